"""The write side: rules, accounts, keys, jobs, limits, audit and the timers (no HTTP)."""
