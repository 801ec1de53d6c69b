"""CSV downloads of paged lists: streamed page by page, cells safe for spreadsheets."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fastapi.responses import StreamingResponse

Page = tuple[list[dict[str, Any]], str | None]  # rows, and the cursor of the next page
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection). A cell
# starts at the start of the text and, for spreadsheets that split on `;` (pt-BR's default,
# which do not see the `,` quoting), after every `;` inside it too.
_FORMULA_START = re.compile(r"(^|;)([=+\-@\t\r])")


def csv_safe(row: dict[str, Any]) -> dict[str, Any]:
    """The row with every text a spreadsheet would evaluate (at the start or after a `;`)
    made text by a `'`."""
    return {k: _FORMULA_START.sub(r"\1'\2", v) if isinstance(v, str) else v for k, v in row.items()}


def csv_download(
    first: Page,
    next_page: Callable[[str], Page],
    columns: Sequence[str],
    max_rows: int,
    filename: str,
) -> StreamingResponse:
    """The pages as one CSV file: `first` already read (so errors answer before streaming)."""

    def lines() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        (rows, after), sent = first, 0
        while True:
            writer.writerows(map(csv_safe, rows))
            sent += len(rows)
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            if after is None or sent >= max_rows:
                return
            rows, after = next_page(after)

    headers = {"content-disposition": f'attachment; filename="{filename}"'}
    return StreamingResponse(lines(), media_type="text/csv", headers=headers)
