// The rule form's filters: a row per field (field, operator, value). A list of values is
// the "in" operator; "not" takes a list too; gt/gte/lt/lte a number; exists yes/no; prefix
// a text (design.md, "Reaching the platform's customers"). Uses app.js's helpers.
"use strict";

const FILTER_OPERATORS = ["in", "not", "gt", "gte", "lt", "lte", "exists", "prefix"];
const LIST_OPERATORS = ["in", "not"];
const NUMBER_OPERATORS = ["gt", "gte", "lt", "lte"];
const FILTER_EXAMPLES = { in: "acme, correios", not: "cancelled", gt: "10", gte: "10", lt: "10", lte: "10", exists: "true | false", prefix: "BR" };

function filterRow(path = "", operator = "in", value = "") {
  const ops = el("select", { name: "filter_op", "data-testid": "filter-op", "aria-label": tr("filterOperator") },
    ...FILTER_OPERATORS.map((op) => el("option", { value: op, text: tr(`op_${op}`) })));
  ops.value = operator;
  const input = el("input", { name: "filter_value", value, placeholder: FILTER_EXAMPLES[operator], "data-testid": "filter-value", "aria-label": tr("filterValue") });
  ops.addEventListener("change", () => { input.placeholder = FILTER_EXAMPLES[ops.value]; });
  const row = el("div", { class: "filter-row", "data-testid": "filter-row" },
    el("input", { name: "filter_path", value: path, placeholder: "payload.carrier", "data-testid": "filter-path", "aria-label": tr("filterField") }),
    ops,
    input,
    el("button", { type: "button", class: "link", "data-testid": "filter-remove", "aria-label": tr("removeFilter"), text: "×", onclick: () => row.remove() }));
  return row;
}

// A rule's filter as a row's operator and value text.
function filterCells(spec) {
  if (Array.isArray(spec)) return ["in", spec.join(", ")];
  const [[op, operand]] = Object.entries(spec);
  return [op, Array.isArray(operand) ? operand.join(", ") : String(operand)];
}

function setFilterRows(filters) {
  const rows = Object.entries(filters || {}).map(([path, spec]) => filterRow(path, ...filterCells(spec)));
  $("#rule-filter-rows").replaceChildren(...rows);
}

function addFilterRow() {
  const row = filterRow();
  $("#rule-filter-rows").append(row);
  $("[data-testid=filter-path]", row).focus();
}

// The rows as the API's `filters`; a row it cannot read goes to `bad.filters`.
function filterRowsBody(bad) {
  const filters = {};
  for (const row of $$("#rule-filter-rows .filter-row")) {
    const path = $("[name=filter_path]", row).value.trim();
    const op = $("[name=filter_op]", row).value;
    const text = $("[name=filter_value]", row).value.trim();
    if (!path && !text) continue;
    const spec = filterSpec(op, text);
    if (!path || spec === undefined) { bad.filters = tr("badFilter", { field: path || "?", op: tr(`op_${op}`) }); continue; }
    filters[path] = spec;
  }
  return filters;
}

function filterSpec(op, text) {
  if (LIST_OPERATORS.includes(op)) {
    const values = text.split(",").map((s) => s.trim()).filter(Boolean);
    if (!values.length) return undefined;
    return op === "in" ? values : { not: values };
  }
  if (NUMBER_OPERATORS.includes(op)) {
    const n = Number(text);
    return text === "" || !Number.isFinite(n) ? undefined : { [op]: n };
  }
  if (op === "exists") return ["true", "false"].includes(text.toLowerCase()) ? { exists: text.toLowerCase() === "true" } : undefined;
  return text ? { prefix: text } : undefined;
}
