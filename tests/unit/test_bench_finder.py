"""bench/load.py's Finder: which processes are summed into each role (from /proc, faked here)."""

import pytest

from bench import load

pytestmark = pytest.mark.unit

PY = "/usr/bin/python3"
# pid: (parent, argv, comm)
PROCESSES = {
    10: (1, [PY, "-m", "server"], "python3"),
    11: (10, [PY, "-c", "from multiprocessing.spawn import spawn_main; spawn_main()"], "python3"),  # the reader
    12: (10, [PY, "-c", "from multiprocessing.resource_tracker import main;main(5)"], "python3"),
    20: (1, [PY, "-m", "producer"], "python3"),
    21: (20, [PY, "-c", "from multiprocessing.spawn import spawn_main; spawn_main()"], "python3"),  # writer 1
    22: (20, [PY, "-c", "from multiprocessing.spawn import spawn_main; spawn_main()"], "python3"),  # writer 2
    23: (20, [PY, "-c", "from multiprocessing.resource_tracker import main;main(7)"], "python3"),
    30: (1, ["/tmp/taosd", "-c", "/tmp/etc"], "taosd"),
    40: (1, ["/bin/sleep", "100"], "sleep"),
}


@pytest.fixture
def fake_proc(monkeypatch):
    monkeypatch.setattr(load, "pids", lambda: list(PROCESSES))
    monkeypatch.setattr(load, "cmdline", lambda pid: PROCESSES[pid][1] if pid in PROCESSES else [])
    monkeypatch.setattr(load, "parent", lambda pid: PROCESSES[pid][0] if pid in PROCESSES else None)
    monkeypatch.setattr(load, "_read", lambda path: PROCESSES[int(path.split("/")[2])][2] + "\n"
                        if path.endswith("/comm") else None)
    monkeypatch.setattr(load, "_namespace", lambda pid: "pid:[1]")


def test_the_producers_writer_processes_count_with_it_and_the_servers_children_are_the_reader(fake_proc):
    found = load.Finder().resolve()
    assert found["producer"] == [20, 21, 22]   # not its resource tracker
    assert found["server"] == [10] and found["reader"] == [11]
    assert found["taosd"] == [30] and "taosadapter" not in found


def test_known_pids_are_taken_as_given_and_their_children_still_found(fake_proc):
    found = load.Finder(known={"producer": 20, "server": 10}).resolve()
    assert found["producer"] == [20, 21, 22] and found["reader"] == [11]
