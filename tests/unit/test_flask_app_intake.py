"""flask_app_intake, run as Ansible runs it, with nft and ss replaced by a host that records the calls.

The molecule scenarios run it against the real nftables (molecule/rolling)."""

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from tests.support.ansible_module import Exited, trap_exits

import flask_app_intake

TABLE = "flask_app_intake_hello_service"
# The real seam, kept before the fixture below replaces it.
REAL_HOST = flask_app_intake.Host



def listing(ports, refused4=(), refused6=()):
    """What `nft -j list table` prints for the module's table."""
    sets = [{"set": {"family": "inet", "name": "ports", "table": TABLE, "type": "inet_service", "elem": list(ports)}},
            {"set": {"family": "inet", "name": "refused_ipv4", "table": TABLE, "type": "ipv4_addr",
                     **({"elem": list(refused4)} if refused4 else {})}},
            {"set": {"family": "inet", "name": "refused_ipv6", "table": TABLE, "type": "ipv6_addr",
                     **({"elem": list(refused6)} if refused6 else {})}}]
    return {"nftables": [{"metainfo": {"version": "1.0.6"}}, {"table": {"family": "inet", "name": TABLE}}, *sets]}


class FakeHost:
    """The table (None: none), the connections `ss` shows at each poll, a clock that each sleep moves on."""

    table_listing = None
    polls = []
    calls = []
    now = 0.0

    def __init__(self, module):
        pass

    def table(self, table):
        FakeHost.calls.append(("list", table))
        return FakeHost.table_listing

    def load(self, text):
        FakeHost.calls.append(("load", text))

    def delete(self, table):
        FakeHost.calls.append(("delete", table))

    def connected(self, ports):
        FakeHost.calls.append(("ss", tuple(ports)))
        return FakeHost.polls.pop(0) if FakeHost.polls else set()

    @staticmethod
    def sleep(seconds):
        FakeHost.now += seconds

    @staticmethod
    def clock():
        return FakeHost.now


@pytest.fixture(autouse=True)
def fake_host(monkeypatch):
    FakeHost.table_listing, FakeHost.polls, FakeHost.calls, FakeHost.now = None, [], [], 0.0
    monkeypatch.setattr(flask_app_intake, "Host", FakeHost)
    trap_exits(monkeypatch)


def run(check_mode=False, expect_failure=False, **args):
    with patch_module_args({"name": "hello-service", **args, "_ansible_check_mode": check_mode}):
        with pytest.raises(Exited) as exited:
            flask_app_intake.main()
    assert exited.value.failed == expect_failure, exited.value.result
    return exited.value.result


def kinds():
    return [call[0] for call in FakeHost.calls]


def test_refused_loads_one_table_that_resets_new_connections_from_other_hosts_only():
    result = run(state="refused", ports=[8080, 8080, 8081])
    assert result["changed"] and result["refusing"] and result["ports"] == [8080, 8081]
    text = FakeHost.calls[-1][1]
    # Declared, deleted and defined again in one nft transaction: a second load replaces, never stacks.
    assert text.startswith(f"table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n")
    assert "elements = { 8080, 8081 }" in text and 'iif "lo" accept' in text
    # Only a connection's first packet: connections open before keep going.
    assert text.count("tcp flags & (syn | ack) == syn") == 2 and text.count("reject with tcp reset") == 2
    assert "add @refused_ipv4 { ip saddr }" in text and "add @refused_ipv6 { ip6 saddr }" in text


def test_refused_again_on_the_same_ports_changes_nothing():
    FakeHost.table_listing = listing([8080], ["10.0.0.5"])
    result = run(state="refused", ports=[8080])
    assert not result["changed"] and result["refused_from"] == ["10.0.0.5"] and "load" not in kinds()


def test_refused_on_other_ports_replaces_the_table():
    FakeHost.table_listing = listing([8080])
    assert run(state="refused", ports=[8081])["changed"] and "elements = { 8081 }" in FakeHost.calls[-1][1]


def test_refused_in_check_mode_loads_nothing():
    assert run(state="refused", ports=[8080], check_mode=True)["changed"] and kinds() == ["list"]


@pytest.mark.parametrize("ports, message", [([], "needs the service's ports"), ([0], "got 0"), ([65536], "got 65536")])
def test_bad_ports_are_refused_before_any_change(ports, message):
    result = run(state="refused", ports=ports, expect_failure=True)
    assert message in result["msg"] and "load" not in kinds()


@pytest.mark.parametrize("name", ["Hello", "a b", "x;flush ruleset", "", "a" * 40])
def test_a_name_that_is_no_service_name_is_refused(name):
    result = run(name=name, state="refused", ports=[8080], expect_failure=True)
    assert "name must be a service name" in result["msg"] and repr(name) in result["msg"] and FakeHost.calls == []


def test_open_without_a_table_changes_nothing():
    result = run(state="open", readmit_timeout=11)
    assert not result["changed"] and not result["refusing"] and kinds() == ["list"]


def test_open_deletes_the_table_and_waits_until_every_refused_address_connects_again():
    FakeHost.table_listing = listing([8080], ["10.0.0.5", "10.0.0.6"], ["fd00::7"])
    FakeHost.polls = [set(), {"10.0.0.5", "10.0.0.9"}, {"fd00::7"}, {"10.0.0.6"}]
    result = run(state="open", readmit_timeout=11)
    assert result["changed"] and not result["refusing"]
    assert result["refused_from"] == ["10.0.0.5", "10.0.0.6", "fd00::7"]
    assert result["readmitted"] == ["10.0.0.5", "10.0.0.6", "fd00::7"] and result["waited"] == pytest.approx(0.6)
    assert kinds() == ["list", "delete", "ss", "ss", "ss", "ss"] and FakeHost.calls[2] == ("ss", (8080,))


def test_open_stops_waiting_at_the_timeout_and_says_who_came_back():
    FakeHost.table_listing = listing([8080], ["10.0.0.5", "10.0.0.6"])
    FakeHost.polls = [{"10.0.0.5"}]
    result = run(state="open", readmit_timeout=3)
    assert result["readmitted"] == ["10.0.0.5"] and 3 <= result["waited"] < 3.3


def test_open_with_nothing_refused_waits_for_nothing():
    FakeHost.table_listing = listing([8080])
    result = run(state="open", readmit_timeout=11)
    assert result["changed"] and result["waited"] == 0 and kinds() == ["list", "delete"]


def test_open_in_check_mode_deletes_nothing():
    FakeHost.table_listing = listing([8080], ["10.0.0.5"])
    assert run(state="open", readmit_timeout=11, check_mode=True)["changed"] and kinds() == ["list"]


def test_query_reports_and_changes_nothing():
    FakeHost.table_listing = listing([8080], ["10.0.0.5"])
    result = run()
    assert not result["changed"] and result["refusing"] and result["ports"] == [8080] and kinds() == ["list"]


def test_a_negative_readmit_timeout_is_refused():
    assert "readmit_timeout must be 0 or more, got -1" in run(state="open", readmit_timeout=-1, expect_failure=True)["msg"]


def test_peers_reads_ss_lines_and_takes_ipv4_mapped_addresses_as_ipv4():
    output = ("0      0      172.31.251.130:8080      172.31.251.129:50312\n"
              "0      0      [::ffff:172.31.251.130]:8080      [::ffff:172.31.251.140]:40000\n"
              "0      0      [fd00::2]:8080      [fd00::7]:40001\n"
              "garbage\n")
    assert flask_app_intake.peers(output) == {"172.31.251.129", "172.31.251.140", "fd00::7"}


def test_set_elements_reads_plain_and_timed_elements():
    document = {"nftables": [{"set": {"name": "refused_ipv4", "elem": ["10.0.0.5", {"elem": {"val": "10.0.0.6"}}]}}]}
    assert flask_app_intake.set_elements(document, "refused_ipv4") == ["10.0.0.5", "10.0.0.6"]
    assert flask_app_intake.set_elements(document, "refused_ipv6") == []


def test_open_watches_the_ports_it_is_given_for_a_service_that_moved():
    FakeHost.table_listing = listing([8080], ["10.0.0.5"])
    FakeHost.polls = [{"10.0.0.5"}]
    assert run(state="open", ports=[8081], readmit_timeout=11)["readmitted"] == ["10.0.0.5"]
    assert FakeHost.calls[2] == ("ss", (8081,))


def test_the_real_seam_without_nft_finds_no_table_and_refuses_to_load(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *args, **kwargs: None)
    monkeypatch.setattr(flask_app_intake, "Host", REAL_HOST)
    assert not run(state="open", readmit_timeout=11)["changed"]
    assert "nft is not installed" in run(state="refused", ports=[8080], expect_failure=True)["msg"]
