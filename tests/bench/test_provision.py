from __future__ import annotations

from bench.provision import NGINX, WRK, install_command


def test_install_command_names_the_debian_packages() -> None:
    assert install_command([WRK, NGINX]) == "apt-get update && apt-get install -y wrk nginx-light"
