"""nginx runs, its configuration is valid, and its upstream is the inventory's backends."""

import json
import uuid

from conftest import container_of, hosts_in, inventory, journal, request

testinfra_hosts = hosts_in("loadbalancers")

SITE = "/etc/nginx/conf.d/hello-service.conf"


def test_nginx_is_active_and_enabled(host):
    nginx = host.service("nginx")
    assert nginx.is_running, journal(host, "nginx")
    assert nginx.is_enabled


def test_nginx_configuration_is_valid(host):
    result = host.run("nginx -t")
    assert result.rc == 0, result.stderr


def test_upstream_names_every_backend(host):
    site = host.file(SITE).content_string
    for backend in inventory().get_hosts("backends"):
        assert f"server {container_of(backend)}:8080 " in site, site
        assert f"# backend={backend}\n" in site


def test_default_site_is_removed(host):
    assert not host.file("/etc/nginx/sites-enabled/default").exists


def test_listens_on_80(host):
    assert host.socket("tcp://0.0.0.0:80").is_listening


def test_access_log_is_json_with_upstream(host, lb_url):
    probe = uuid.uuid4().hex
    assert request(f"{lb_url}/requestme?probe={probe}").status == 200
    lines = host.check_output(f"grep -F {probe} /var/log/nginx/hello-service.access.log").splitlines()
    assert len(lines) == 1, lines
    entry = json.loads(lines[0])
    assert entry["status"] == 200
    assert entry["upstream_addr"].endswith(":8080")
    assert entry["upstream_status"] == "200"
    assert len(entry["request_id"]) == 32


def test_kernel_settings_let_backend_connections_reuse_ports(host):
    # Written for the next boot and for hosts; a container's /proc/sys is
    # read-only, so the role leaves applying them to the engine there.
    settings = host.file("/etc/sysctl.d/60-hello-service.conf")
    assert (settings.user, settings.group, settings.mode) == ("root", "root", 0o644)
    assert "\nnet.ipv4.tcp_tw_reuse = 1\n" in settings.content_string
