"""Vehicle administration from the command line, on real PostGIS: add, list, set, revoke, new token."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.cli.main import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.strip()], err


@pytest.fixture
def env(clean_db: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_URL", clean_db)
    monkeypatch.setenv("ROADWATCH_DATA_DIR", str(tmp_path / "var"))


def test_vehicle_lifecycle(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings

    code, (added,), _ = _run(
        capsys, "vehicle", "add", "kehrmaschine-3", "--height-m", "2.1", "--privacy-horizon", "0.5"
    )
    assert code == 0 and added["token"].startswith("rwv_") and added["privacy_horizon"] == 0.5
    code, rows, _ = _run(capsys, "vehicle", "list")
    assert [r["vehicle"] for r in rows] == ["kehrmaschine-3"] and "token" not in rows[0]
    assert rows[0]["camera_height_m"] == 2.1 and rows[0]["active"] is True

    code, (changed,), _ = _run(
        capsys, "vehicle", "set", "kehrmaschine-3", "--pitch-deg", "14", "--privacy-horizon", "none"
    )
    assert changed["camera_pitch_deg"] == 14 and changed["camera_height_m"] == 2.1
    assert changed["privacy_horizon"] == 0.0  # no band for this camera
    code, (changed,), _ = _run(capsys, "vehicle", "set", "kehrmaschine-3", "--privacy-horizon", "default")
    assert changed["privacy_horizon"] is None and changed["camera_pitch_deg"] == 14  # untouched

    with TestClient(create_app(Settings())) as client:

        def upload(token: str) -> int:
            return client.post(
                "/api/v1/frames/missing", json={"sha256": []}, headers={"Authorization": f"Bearer {token}"}
            ).status_code

        assert upload(added["token"]) == 200
        code, (revoked,), _ = _run(capsys, "vehicle", "revoke", "kehrmaschine-3")
        assert revoked["active"] is False and upload(added["token"]) == 401
        code, (renewed,), _ = _run(capsys, "vehicle", "token", "kehrmaschine-3")
        assert renewed["active"] is True and renewed["token"] != added["token"]
        assert upload(renewed["token"]) == 200 and upload(added["token"]) == 401


def test_vehicle_commands_refuse_bad_values(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "vehicle", "add", "a")[0] == 0
    code, _, err = _run(capsys, "vehicle", "set", "nobody", "--pitch-deg", "5")
    assert code == 1 and "no vehicle named 'nobody'" in err
    code, _, err = _run(capsys, "vehicle", "set", "a", "--pitch-deg", "95")
    assert code == 1 and "pitch must be" in err
    code, _, err = _run(capsys, "vehicle", "add", "b", "--height-m", "0")
    assert code == 1 and "height must be" in err
    for bad in ("1.5", "lots"):
        with pytest.raises(SystemExit) as exc:
            main(["vehicle", "set", "a", "--privacy-horizon", bad])
        assert exc.value.code == 2
    code, rows, _ = _run(capsys, "vehicle", "list")
    assert [(r["vehicle"], r["camera_pitch_deg"]) for r in rows] == [("a", 10.0)]  # nothing changed
