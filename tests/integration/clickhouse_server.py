"""A throwaway ClickHouse server (Debian's package) on free loopback ports, for driver tests."""

from __future__ import annotations

import time
from pathlib import Path

from clickhouse_driver import Client
from clickhouse_driver.errors import Error

from deploy.local.broker import free_port
from deploy.local.processes import ProcessTable

SERVER_BINARY = Path("/usr/sbin/clickhouse-server")

CONFIG = """<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><console>1</console></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>{tcp_port}</tcp_port>
  <http_port>{http_port}</http_port>
  <path>{data}/</path>
  <tmp_path>{data}/tmp/</tmp_path>
  <user_files_path>{data}/user_files/</user_files_path>
  <format_schema_path>{data}/format_schemas/</format_schema_path>
  <mark_cache_size>268435456</mark_cache_size>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
</yandex>
"""

USERS = """<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
"""


class ClickHouseServer:
    """One clickhouse-server process whose data survives `restart()`."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.tcp_port = free_port()
        self.table = ProcessTable(home / "run")
        home.mkdir(parents=True, exist_ok=True)
        (home / "users.xml").write_text(USERS)
        config = CONFIG.format(tcp_port=self.tcp_port, http_port=free_port(), data=home / "data")
        (home / "config.xml").write_text(config)

    @property
    def url(self) -> str:
        return f"clickhouse://127.0.0.1:{self.tcp_port}"

    def start(self, timeout_s: float = 60.0) -> None:
        argv = [str(SERVER_BINARY), f"--config-file={self.home / 'config.xml'}"]
        self.table.start("clickhouse", argv, {"PATH": "/usr/bin:/bin"}, cwd=self.home)
        self.wait_ready(timeout_s)

    def stop(self) -> None:
        self.table.stop("clickhouse", grace_s=20)

    def restart(self) -> None:
        self.stop()
        self.start()

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            client = Client("127.0.0.1", port=self.tcp_port, connect_timeout=2)
            try:
                client.execute("SELECT 1")
                return
            except (Error, OSError, EOFError):
                if time.monotonic() > deadline or self.table.pid("clickhouse") is None:
                    log = self.table.log_file("clickhouse").read_text(errors="replace")
                    raise RuntimeError(f"clickhouse-server did not start:\n{log[-3000:]}") from None
                time.sleep(0.2)
            finally:
                client.disconnect()
