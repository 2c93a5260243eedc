"""scripts/package-mirror: which archive mirror image builds use, read from fixture files only."""

import importlib.machinery
import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def load_script():
    path = ROOT / "scripts" / "package-mirror"
    loader = importlib.machinery.SourceFileLoader("package_mirror", str(path))
    spec = importlib.util.spec_from_loader("package_mirror", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


package_mirror = load_script()

# Hosts of the fixtures are reserved test names: no real archive is named, nothing is contacted.
MAIN = "http://main.mirror.test/archive"
SECURITY = "http://security.mirror.test/archive-security"
GIVEN = "http://cache.internal.test:3142/archive"

DEBIAN_DEB822 = """\
Types: deb
# a snapshot this machine used once: http://old.mirror.test/snapshot
URIs: {main}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: {security}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
""".format(main=MAIN, security=SECURITY)

UBUNTU_DEB822 = """\
Types: deb
URIs: http://noble-main.mirror.test/archive/
Suites: noble noble-updates noble-backports
Components: main restricted universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg

Types: deb
URIs: http://noble-security.mirror.test/archive/
Suites: noble-security
Components: main restricted universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg
"""


@pytest.fixture
def apt(tmp_path):
    """A fake /etc/apt: write(name, text) adds a file; paths() gives the reader's parameters."""
    sources_dir = tmp_path / "sources.list.d"
    sources_dir.mkdir()

    class Apt:
        sources_list = tmp_path / "sources.list"

        def write(self, name, text):
            target = self.sources_list if name == "sources.list" else sources_dir / name
            target.write_text(text)
            return target

        def find(self, archive="debian", suite="bookworm", environ=None):
            return package_mirror.find_mirror(archive, suite, environ or {}, str(self.sources_list), str(sources_dir))

        def argv(self):
            return ["--sources-list", str(self.sources_list), "--sources-dir", str(sources_dir)]

    return Apt()


def test_deb822_main_archive_is_found(apt):
    path = apt.write("debian.sources", DEBIAN_DEB822)
    assert apt.find() == (MAIN, "%s:1" % path)


def test_one_line_main_archive_is_found(apt):
    path = apt.write("sources.list", (
        "# deb http://disabled.mirror.test/archive bookworm main\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s/ bookworm main contrib\n"
        "deb-src %s bookworm main\n" % (MAIN, MAIN)))
    assert apt.find() == (MAIN, "%s:2" % path)


def test_one_line_entry_without_options_is_found(apt):
    apt.write("sources.list", "deb\t%s bookworm main  # the archive\n" % MAIN)
    assert apt.find()[0] == MAIN


def test_security_and_updates_entries_are_skipped(apt):
    apt.write("sources.list", (
        "deb %s bookworm-security main\n"
        "deb http://updates.mirror.test/archive bookworm-updates main\n"
        "deb %s bookworm main\n" % (SECURITY, MAIN)))
    assert apt.find()[0] == MAIN


def test_only_security_and_updates_entries_is_an_error(apt):
    apt.write("debian.sources", DEBIAN_DEB822.replace("Suites: bookworm bookworm-updates", "Suites: bookworm-updates"))
    with pytest.raises(package_mirror.MirrorError, match="set DEBIAN_MIRROR"):
        apt.find()


def test_input_variable_takes_precedence(apt):
    apt.write("debian.sources", DEBIAN_DEB822)
    assert apt.find(environ={"DEBIAN_MIRROR": GIVEN + "/"}) == (GIVEN, "DEBIAN_MIRROR")


def test_empty_input_variable_is_unset(apt):
    apt.write("debian.sources", DEBIAN_DEB822)
    assert apt.find(environ={"DEBIAN_MIRROR": " "})[0] == MAIN


def test_other_archive_variable_is_ignored(apt):
    apt.write("debian.sources", DEBIAN_DEB822)
    assert apt.find(environ={"UBUNTU_MIRROR": GIVEN})[0] == MAIN


@pytest.mark.parametrize("value", ["ftp://host/archive", "host/archive", "http://", "http://host/a b",
                                   "http://host/archive?x=1"])
def test_malformed_input_names_variable_and_value(apt, value):
    apt.write("debian.sources", DEBIAN_DEB822)
    with pytest.raises(package_mirror.MirrorError) as error:
        apt.find(environ={"DEBIAN_MIRROR": value})
    assert "DEBIAN_MIRROR=%r" % value in str(error.value)


def test_no_apt_sources_names_the_variable(apt):
    with pytest.raises(package_mirror.MirrorError, match="no Debian archive .* set DEBIAN_MIRROR"):
        apt.find()


def test_ubuntu_archive_is_read_the_same_way(apt):
    apt.write("ubuntu.sources", UBUNTU_DEB822)
    assert apt.find("ubuntu", "noble")[0] == "http://noble-main.mirror.test/archive"


def test_ubuntu_machine_has_no_debian_archive(apt):
    apt.write("ubuntu.sources", UBUNTU_DEB822)
    with pytest.raises(package_mirror.MirrorError, match="set DEBIAN_MIRROR"):
        apt.find("debian", "trixie")


def test_debian_machine_reads_ubuntu_from_ubuntus_own_archive(apt):
    apt.write("debian.sources", DEBIAN_DEB822)
    mirror, origin = apt.find("ubuntu", "noble")
    assert mirror == "http://archive.ubuntu.com/ubuntu"
    assert "no UBUNTU_MIRROR set" in origin


def test_ubuntu_input_variable_replaces_ubuntus_own_archive(apt):
    apt.write("debian.sources", DEBIAN_DEB822)
    assert apt.find("ubuntu", "noble", {"UBUNTU_MIRROR": GIVEN}) == (GIVEN, "UBUNTU_MIRROR")


def test_ubuntu_input_variable(apt):
    assert apt.find("ubuntu", "noble", {"UBUNTU_MIRROR": GIVEN}) == (GIVEN, "UBUNTU_MIRROR")


def test_another_release_of_the_same_archive_uses_the_machines_mirror(apt):
    apt.write("debian.sources", DEBIAN_DEB822)
    assert apt.find(suite="trixie")[0] == MAIN


def test_requested_suite_is_recognised_without_a_code_change(apt):
    apt.write("sources.list", "deb %s futurename main\n" % MAIN)
    assert apt.find(suite="futurename")[0] == MAIN
    with pytest.raises(package_mirror.MirrorError):
        apt.find(suite="bookworm")


@pytest.mark.parametrize("entry", [
    # a third party reusing the codename, signed by its own key
    "deb [signed-by=/etc/apt/keyrings/vendor.gpg] http://vendor.test/repo bookworm main",
    # a third party reusing the codename with its own component
    "deb http://vendor.test/repo bookworm stable",
    "deb-src %s bookworm main" % MAIN,
    "deb cdrom:[Debian 12]/ bookworm main",
    "deb file:///srv/local-archive bookworm main",
    "deb [trusted=yes] http://vendor.test/flat ./",
], ids=["foreign-key", "foreign-component", "deb-src", "cdrom", "file", "flat"])
def test_entries_that_are_not_the_archive_are_skipped(apt, entry):
    apt.write("sources.list", entry + "\n")
    with pytest.raises(package_mirror.MirrorError, match="set DEBIAN_MIRROR"):
        apt.find()
    apt.write("debian.sources", DEBIAN_DEB822)
    assert apt.find()[0] == MAIN


def test_disabled_and_inline_signed_deb822_entries_are_skipped(apt):
    apt.write("a.sources", (
        "Types: deb\nURIs: http://disabled.mirror.test/archive\nSuites: bookworm\nComponents: main\nEnabled: no\n\n"
        "Types: deb\nURIs: http://vendor.test/repo\nSuites: bookworm\nComponents: main\n"
        "Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n xsBNBF\n -----END PGP PUBLIC KEY BLOCK-----\n"))
    apt.write("b.sources", DEBIAN_DEB822)
    assert apt.find()[0] == MAIN


def test_apt_reading_order_wins_among_equals(apt):
    unsigned = DEBIAN_DEB822.replace("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n", "")
    apt.write("sources.list", "deb http://first.mirror.test/archive bookworm main\n")
    apt.write("debian.sources", unsigned)
    assert apt.find()[0] == "http://first.mirror.test/archive"
    apt.sources_list.unlink()
    apt.write("a.list", "deb http://list.mirror.test/archive bookworm main\n")
    assert apt.find()[0] == "http://list.mirror.test/archive"
    apt.write("0.sources", unsigned.replace(MAIN, "http://zero.mirror.test/archive"))
    assert apt.find()[0] == "http://zero.mirror.test/archive"


def test_archive_keyring_comes_before_an_unsigned_entry_sorted_earlier(apt):
    apt.write("a-vendor.list", "deb http://vendor.test/repo/24.04 noble main\n")
    apt.write("ubuntu.sources", UBUNTU_DEB822)
    assert apt.find("ubuntu", "noble")[0] == "http://noble-main.mirror.test/archive"
    unsigned = UBUNTU_DEB822.replace("Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n", "")
    apt.write("ubuntu.sources", unsigned)
    assert apt.find("ubuntu", "noble")[0] == "http://vendor.test/repo/24.04"


def test_files_apt_ignores_are_ignored(apt):
    apt.write("debian.sources.disabled", DEBIAN_DEB822)
    apt.write("debian.sources.save", DEBIAN_DEB822)
    with pytest.raises(package_mirror.MirrorError):
        apt.find()


@pytest.mark.parametrize("name, text, message", [
    ("sources.list", "deb [arch=amd64 %s bookworm main\n" % MAIN, r"sources.list:1: unclosed '\['"),
    ("sources.list", "deb %s\n" % MAIN, "sources.list:1: expected 'TYPE URI SUITE"),
    ("x.sources", "Types: deb\nURIs %s\n" % MAIN, "x.sources:2: expected 'Field: value'"),
    ("x.sources", " continued\n", "x.sources:1: continuation line"),
])
def test_malformed_sources_name_file_and_line(apt, name, text, message):
    apt.write(name, text)
    with pytest.raises(package_mirror.MirrorError, match=message):
        apt.find()


def test_rendered_sources_read_back_as_the_archive(apt):
    text = package_mirror.render_sources("debian", "trixie", GIVEN, "DEBIAN_MIRROR")
    (entry,) = package_mirror.parse_deb822(text, "image")
    assert entry.uris == (GIVEN,)
    assert entry.suites == ("trixie", "trixie-updates")
    assert entry.components == ("main",)
    assert package_mirror.is_main_archive(entry, package_mirror.ARCHIVES["debian"], "trixie")
    assert "from DEBIAN_MIRROR" in text


def test_rendered_ubuntu_sources_enable_universe():
    text = package_mirror.render_sources("ubuntu", "noble", GIVEN, "UBUNTU_MIRROR")
    (entry,) = package_mirror.parse_deb822(text, "image")
    assert entry.components == ("main", "universe")
    assert entry.signed_by == ("/usr/share/keyrings/ubuntu-archive-keyring.gpg",)


def test_command_prints_the_mirror_and_writes_the_sources(apt, tmp_path, capsys):
    path = apt.write("debian.sources", DEBIAN_DEB822)
    output = tmp_path / "image.sources"
    status = package_mirror.main(["--archive", "debian", "--suite", "bookworm", "--sources-file", str(output)]
                                 + apt.argv(), environ={})
    assert status == 0
    captured = capsys.readouterr()
    assert captured.out == MAIN + "\n"
    assert captured.err == "package mirror: %s (from %s:1)\n" % (MAIN, path)
    (entry,) = package_mirror.parse_deb822(output.read_text(), "image")
    assert entry.uris == (MAIN,) and entry.suites == ("bookworm", "bookworm-updates")
    assert "from %s:1" % path in output.read_text()


def test_command_error_names_the_variable_and_writes_nothing(apt, tmp_path, capsys):
    output = tmp_path / "image.sources"
    status = package_mirror.main(["--archive", "debian", "--suite", "trixie", "--sources-file", str(output)]
                                 + apt.argv(), environ={})
    assert status == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("ERROR: no Debian archive") and "set DEBIAN_MIRROR" in captured.err
    assert not output.exists()


def test_command_malformed_input_is_not_a_missing_mirror(apt, capsys):
    apt.write("debian.sources", DEBIAN_DEB822)
    status = package_mirror.main(["--archive", "debian", "--suite", "bookworm"] + apt.argv(),
                                 environ={"DEBIAN_MIRROR": "mirror.test/archive"})
    assert status == 1
    assert capsys.readouterr().err.startswith("ERROR: DEBIAN_MIRROR='mirror.test/archive' is not")


@pytest.mark.parametrize("suite", ["Bookworm", "bookworm-security", "../x", ""])
def test_command_rejects_a_suite_that_is_not_a_codename(apt, suite, capsys):
    with pytest.raises(SystemExit) as exit_status:
        package_mirror.main(["--archive", "debian", "--suite", suite] + apt.argv(), environ={})
    assert exit_status.value.code == 2
    assert "--suite" in capsys.readouterr().err
