"""The shipped nginx site, made to run on loopback: only the lines named change."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from benchmarks.loadtest.site import SHIPPED, Loopback, SiteChanged, loopback_site, main_config

LOOPBACK = Loopback((8101, 8102), 8180, 8443, Path("/run/site.crt"), Path("/run/site.key"))


def test_upstream_names_the_loopback_instances_with_the_shipped_parameters() -> None:
    site, _ = loopback_site(SHIPPED.read_text(), LOOPBACK)
    assert "    server 127.0.0.1:8101 max_fails=3 fail_timeout=10s;" in site.splitlines()
    assert "    server 127.0.0.1:8102 max_fails=3 fail_timeout=10s;" in site.splitlines()


def test_site_listens_on_loopback_only_with_the_run_certificate() -> None:
    site, _ = loopback_site(SHIPPED.read_text(), LOOPBACK)
    listens = [line.strip() for line in site.splitlines() if line.strip().startswith("listen")]
    assert listens == ["listen 127.0.0.1:8180;", "listen 127.0.0.1:8443 ssl http2;"]
    for gone in ("10.0.0.", "[::]", "/etc/letsencrypt"):
        assert gone not in site
    assert "    ssl_certificate     /run/site.crt;" in site.splitlines()
    assert "    ssl_certificate_key /run/site.key;" in site.splitlines()
    assert "    return 301 https://$host:8443$request_uri;" in site.splitlines()


def test_every_line_not_replaced_is_the_shipped_line_in_its_place() -> None:
    shipped = SHIPPED.read_text()
    site, changed = loopback_site(shipped, LOOPBACK)
    replaced = {old for old, _ in changed}
    inserted = {new for _, new in changed if new}
    assert len(changed) == 9
    kept = [line for line in shipped.splitlines() if line not in replaced]
    assert [line for line in site.splitlines() if line not in inserted] == kept
    # The directives that make it the shipped site, untouched.
    for directive in ("least_conn;", "keepalive 32;", "proxy_buffering off;", "return 404;"):
        assert directive in site


def test_a_shipped_site_without_a_replaced_line_stops_the_load_test() -> None:
    shipped = SHIPPED.read_text().replace("    listen [::]:443 ssl http2;\n", "")
    with pytest.raises(SiteChanged, match=r"listen \\\[::\\\]:443"):
        loopback_site(shipped, LOOPBACK)


def test_a_shipped_upstream_of_another_size_stops_the_load_test() -> None:
    shipped = SHIPPED.read_text()
    with pytest.raises(SiteChanged, match=re.escape("3 `server 10.0.0.N:8080` lines")):
        loopback_site(
            shipped.replace(
                "    server 10.0.0.12:8080 max_fails=3 fail_timeout=10s;\n",
                "    server 10.0.0.12:8080 max_fails=3 fail_timeout=10s;\n"
                "    server 10.0.0.13:8080 max_fails=3 fail_timeout=10s;\n",
            ),
            LOOPBACK,
        )


def test_nginx_accepts_the_generated_site(tmp_path: Path) -> None:
    nginx = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if nginx is None or shutil.which("openssl") is None:
        pytest.skip("needs nginx and openssl: apt-get install nginx-light openssl")
    certificate, key = tmp_path / "site.crt", tmp_path / "site.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(certificate)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    loopback = Loopback((8101, 8102), 8180, 8443, certificate, key)
    site, _ = loopback_site(SHIPPED.read_text(), loopback)
    (tmp_path / "site.conf").write_text(site)
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        main_config(tmp_path, tmp_path / "site.conf", workers=1, as_root=os.geteuid() == 0)
    )
    checked = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
