"""Every setting is documented once in .env.example, with the same default as in code and in
compose.yaml; compose.yaml passes the Compose Specification schema and Docker Compose v1."""

import re
import shutil
import subprocess
import tomllib

import pytest
import yaml

from common import tdengine
from producer.settings import DEFAULTS as PRODUCER_DEFAULTS
from server.settings import DEFAULTS as SERVER_DEFAULTS
from tests.conftest import ROOT

ENTRY = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")
CODE_DEFAULTS = {
    "TDENGINE_URL": tdengine.DEFAULT_URL,
    "TDENGINE_USER": tdengine.DEFAULT_USER,
    "TDENGINE_PASSWORD": tdengine.DEFAULT_PASSWORD,
    "TDENGINE_DATABASE": tdengine.DEFAULT_DATABASE,
    **PRODUCER_DEFAULTS,
    **SERVER_DEFAULTS,
}


def env_example() -> dict[str, str]:
    entries = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = ENTRY.match(line)
        if match:
            name, value = match.groups()
            assert name not in entries, f"{name} is documented twice in .env.example"
            entries[name] = value
    return entries


def compose_defaults() -> dict[str, str]:
    text = (ROOT / "compose.yaml").read_text()
    found = {}
    for name, value in re.findall(r"\$\{([A-Z][A-Z0-9_]*):-([^}]*)\}", text):
        assert found.setdefault(name, value) == value, f"{name} has two defaults in compose.yaml"
    return found


def test_every_code_default_is_in_env_example_with_the_same_value():
    documented = env_example()
    for name, value in CODE_DEFAULTS.items():
        assert documented.get(name) == value, f"{name}: code says {value!r}, .env.example {documented.get(name)!r}"


def test_every_compose_default_is_in_env_example_with_the_same_value():
    documented = env_example()
    for name, value in compose_defaults().items():
        assert documented.get(name) == value, f"{name}: compose says {value!r}, .env.example {documented.get(name)!r}"


def test_every_documented_setting_is_used_somewhere():
    used = set(CODE_DEFAULTS) | set(compose_defaults())
    unused = set(env_example()) - used
    assert not unused, f"documented in .env.example but used nowhere: {sorted(unused)}"


def test_no_own_setting_is_named_taos():
    """The TDengine image turns every TAOS_* variable into server configuration."""
    assert not [n for n in env_example() if n.startswith("TAOS_")]


def test_compose_passes_the_compose_specification_schema():
    checker = shutil.which("check-jsonschema", path=str(ROOT / ".venv" / "bin")) or shutil.which("check-jsonschema")
    assert checker, "check-jsonschema is a test dependency"
    result = subprocess.run([checker, "--builtin-schema", "vendor.compose-spec", str(ROOT / "compose.yaml")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def _docker_compose_v1(*args: str) -> subprocess.CompletedProcess:
    if not shutil.which("docker-compose"):
        pytest.skip("docker-compose (v1) is not installed; tests/run.sh installs it on Debian")
    return subprocess.run(["docker-compose", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin:/usr/local/bin"})


def test_compose_passes_docker_compose_v1():
    result = _docker_compose_v1("config", "-q")
    assert result.returncode == 0, result.stdout + result.stderr


def test_explorer_is_opt_in_and_reaches_the_database_by_service_name():
    resolved = _docker_compose_v1("--profile", "explorer", "config")
    assert resolved.returncode == 0, resolved.stderr
    services = yaml.safe_load(resolved.stdout)["services"]
    # `up` starts the services without a profile; the Explorer only with --profile explorer.
    assert {name for name, service in services.items() if not service.get("profiles")} == {
        "tdengine", "producer", "server", "viewer"}
    explorer = services["explorer"]
    assert explorer["profiles"] == ["explorer"]
    # Same image as the database, which runs with its own Explorer (and taosKeeper) switched off.
    assert explorer["image"] == services["tdengine"]["image"]
    assert services["tdengine"]["environment"]["TAOS_DISABLE_EXPLORER"] == "1"
    assert services["tdengine"]["environment"]["TAOS_DISABLE_KEEPER"] == "1"
    assert explorer["command"] == ["taos-explorer"]
    assert explorer["ports"] == ["127.0.0.1:6060:6060/tcp"]
    [mount] = explorer["volumes"]
    source, target, mode = mount.split(":")
    assert source == str(ROOT / "explorer" / "explorer.toml") and target == "/etc/taos/explorer.toml" and mode == "ro"
    config = tomllib.loads((ROOT / "explorer" / "explorer.toml").read_text())
    assert config["cluster"] == "http://tdengine:6041" and config["port"] == 6060


def test_compose_services_have_health_restart_and_bounded_logs():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert "name" not in compose
    for name, service in compose["services"].items():
        assert service.get("restart") == "unless-stopped", name
        assert service["logging"]["driver"] == "json-file" and "max-size" in service["logging"]["options"], name
        assert "healthcheck" in service or (ROOT / name / "Dockerfile").read_text().count("HEALTHCHECK") == 1, name
        if name == "viewer":
            continue
        published = service.get("ports", [])
        assert all(port.startswith("127.0.0.1:") for port in published), f"{name} publishes beyond loopback"
        assert not published or service.get("profiles"), f"{name} publishes a port without being opt-in"
    assert compose["services"]["producer"]["depends_on"]["tdengine"]["condition"] == "service_healthy"
    image = compose["services"]["tdengine"]["image"]
    assert ":latest" not in image and re.search(r":\d+\.\d+\.\d+\.\d+\}$", image)


def _healthcheck_with(curl_output: str) -> subprocess.CompletedProcess:
    """Run the tdengine healthcheck's shell with a stand-in curl that prints `curl_output`."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    kind, command = compose["services"]["tdengine"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    script = f"curl() {{ printf '%s' '{curl_output}'; }}; TAOS_ROOT_PASSWORD=pw; " + command.replace("$$", "$")
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=10)


def test_tdengine_healthcheck_needs_an_sql_round_trip_and_names_a_wrong_password():
    assert _healthcheck_with('{"code":0,"column_meta":[],"data":[["3.3.6.13"]],"rows":1}').returncode == 0
    wrong = _healthcheck_with('{"code":855,"desc":"Authentication failure"}')
    assert wrong.returncode == 1 and "TDENGINE_PASSWORD does not match" in wrong.stdout
    down = _healthcheck_with("")
    assert down.returncode == 1 and "TDENGINE_PASSWORD" not in down.stdout


# --- compose.cluster.yaml: three dnodes, every service through all three adapters (issue 14) ---

def _cluster_config() -> dict:
    resolved = _docker_compose_v1("-f", "compose.yaml", "-f", "compose.cluster.yaml", "config")
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr
    return yaml.safe_load(resolved.stdout)


def test_the_cluster_override_passes_the_compose_specification_schema():
    checker = shutil.which("check-jsonschema", path=str(ROOT / ".venv" / "bin")) or shutil.which("check-jsonschema")
    result = subprocess.run([checker, "--builtin-schema", "vendor.compose-spec", str(ROOT / "compose.cluster.yaml")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_cluster_override_makes_three_dnodes_and_points_every_service_at_all_three():
    from producer.settings import ProducerSettings
    from server.settings import ServerSettings

    config = _cluster_config()
    services = config["services"]
    dnodes = ["tdengine", "tdengine-2", "tdengine-3"]
    volumes = set()
    for name in dnodes:
        service = services[name]
        env = service["environment"]
        assert env["TAOS_FQDN"] == name and env["TAOS_FIRST_EP"] == "tdengine:6030"
        assert service["image"] == services["tdengine"]["image"] and "healthcheck" in service
        assert service["restart"] == "unless-stopped" and "max-size" in service["logging"]["options"]
        [mount] = service["volumes"]
        volumes.add(mount.split(":")[0])
    # a volume each, none of them the single-node stack's
    assert len(volumes) == 3 and "tdengine-data" not in volumes and volumes <= set(config["volumes"])
    mnodes = services["tdengine-mnodes"]
    assert {name: dep["condition"] for name, dep in mnodes["depends_on"].items()} == {
        "tdengine-2": "service_healthy", "tdengine-3": "service_healthy"}
    for name in ("producer", "server"):
        env = services[name]["environment"]
        assert env["TDENGINE_URL"] == "ws://tdengine:6041,tdengine-2:6041,tdengine-3:6041"
        assert services[name]["depends_on"]["tdengine-mnodes"]["condition"] == "service_completed_successfully"
    producer = ProducerSettings.from_env(services["producer"]["environment"])
    assert producer.replica == 3 and producer.vgroups >= 2
    assert producer.tdengine.addresses == ["tdengine:6041", "tdengine-2:6041", "tdengine-3:6041"]
    assert len(ServerSettings.from_env(services["server"]["environment"]).tdengine.addresses) == 3
    # the single-node stack is unchanged by the file's existence
    single = yaml.safe_load(_docker_compose_v1("config").stdout)["services"]
    assert single["producer"]["environment"]["TDENGINE_URL"] == "ws://tdengine:6041"
    assert single["producer"]["environment"]["PRODUCER_REPLICA"] == "1" and "tdengine-2" not in single


def _mnodes_script_with(taos_output: str) -> subprocess.CompletedProcess:
    """The tdengine-mnodes job's shell, with a stand-in taos CLI that prints `taos_output`."""
    compose = yaml.safe_load((ROOT / "compose.cluster.yaml").read_text())
    [script] = compose["services"]["tdengine-mnodes"]["command"]
    stand_in = f"taos() {{ printf '%s\\n' '{taos_output}'; }}; TDENGINE_PASSWORD=pw; "
    return subprocess.run(["bash", "-c", stand_in + script.replace("$$", "$")], capture_output=True, text=True,
                          timeout=10)


def test_the_mnodes_job_succeeds_once_made_or_already_there_and_fails_with_the_error():
    assert _mnodes_script_with("Create OK, 0 row(s) affected (0.2s)").returncode == 0
    assert _mnodes_script_with("DB error: Mnode already exists [0x800003A0] (0.000555s)").returncode == 0
    failed = _mnodes_script_with("DB error: Dnode does not exist [0x80000346]")
    assert failed.returncode == 1 and "CREATE MNODE ON DNODE 2: DB error: Dnode does not exist" in failed.stdout
