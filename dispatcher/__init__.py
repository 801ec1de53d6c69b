"""The rule-matching stream processor: order events in, dispatch jobs out."""
