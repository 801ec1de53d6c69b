"""Running disparo: the `disparo` command, which starts each service, and the local stack."""
