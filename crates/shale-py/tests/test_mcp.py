"""`shale mcp` with the official MCP Python SDK as its client, over stdio:
the tools and their schemas and hints, snapshot and clone called, a
failure answered as a tool error with Shale's message."""

import asyncio
import json
import sys

import pytest

import shale

pytest.importorskip("mcp")
from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402


async def session_calls(pool_path: str) -> dict:
    params = StdioServerParameters(command=sys.executable, args=["-m", "shale", "--pool", pool_path, "mcp"])
    out = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            info = await session.initialize()
            out["server"] = info.server_info.name
            out["tools"] = {t.name: t for t in (await session.list_tools()).tools}
            out["snapshot"] = await session.call_tool("create_snapshot", {"volume": "imagenet", "name": "v1"})
            out["clone"] = await session.call_tool(
                "clone_volume", {"new_volume": "exp", "source": "imagenet", "snapshot": "v1"})
            out["volumes"] = await session.call_tool("list_volumes", {})
            out["diff"] = await session.call_tool("diff", {"from": "imagenet@v1", "to": "exp"})
            out["lineage"] = await session.call_tool("lineage", {"spec": "imagenet@v1"})
            out["missing"] = await session.call_tool("create_snapshot", {"volume": "nope"})
            out["restore"] = await session.call_tool("restore_snapshot", {"volume": "imagenet", "snapshot": "v1"})
    return out


def test_mcp_tools_over_stdio(tmp_path, data_dir):
    pool = shale.Pool(tmp_path / "pool")
    pool.create_volume("imagenet", from_dir=data_dir)
    out = asyncio.run(session_calls(str(pool.path)))

    assert out["server"] == "shale"
    tools = out["tools"]
    assert set(tools) == {"pool_info", "list_volumes", "list_snapshots", "create_snapshot", "clone_volume",
                          "restore_snapshot", "diff", "lineage"}
    assert tools["restore_snapshot"].annotations.destructive_hint is True
    assert tools["list_volumes"].annotations.read_only_hint is True
    assert tools["create_snapshot"].annotations.destructive_hint is False
    assert tools["create_snapshot"].input_schema["required"] == ["volume"]
    assert "id" in tools["create_snapshot"].output_schema["properties"]

    snap = out["snapshot"]
    assert not snap.is_error
    assert snap.structured_content["id"] == pool.volume("imagenet").snapshot_info("v1")["id"]
    assert not out["clone"].is_error and out["clone"].structured_content["origin"] == "imagenet@v1"
    assert {v["name"] for v in out["volumes"].structured_content["volumes"]} == {"imagenet", "exp"}
    assert out["diff"].structured_content["stat"]["added"] == 0
    assert out["lineage"].structured_content["clones"] == ["exp"]
    missing = out["missing"]
    assert missing.is_error and "volume 'nope' not found" in missing.content[0].text
    assert not out["restore"].is_error


async def http_calls(url: str, token: str) -> dict:
    from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

    out = {}
    client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with client, streamable_http_client(url, http_client=client) as (read, write, *_):
        async with ClientSession(read, write) as session:
            await session.initialize()
            out["tools"] = {t.name for t in (await session.list_tools()).tools}
            out["volumes"] = await session.call_tool("list_volumes", {})
            out["snapshot"] = await session.call_tool("create_snapshot", {"volume": "imagenet", "name": "h1"})
            out["clone"] = await session.call_tool(
                "clone_volume", {"new_volume": "exp2", "source": "imagenet", "snapshot": "h1"})
            out["other"] = await session.call_tool("list_snapshots", {"volume": "hr-data"})
    return out


def test_mcp_tools_over_the_servers_http_with_its_tokens(tmp_path, data_dir):
    """Under `shale serve`, /mcp speaks the streamable HTTP transport: no
    token is 401; a write token for one volume sees only it and its clones,
    snapshots and clones it (audited), and is refused another volume; a
    read token cannot snapshot."""
    import urllib.error
    import urllib.request

    from test_server import serve, shale as run

    pool = tmp_path / "pool"
    run(pool, "volume", "create", "imagenet", "--from", str(data_dir))
    run(pool, "volume", "create", "hr-data")
    admin = json.loads(run(pool, "--json", "token", "create", "--role", "admin"))["token"]
    writer = json.loads(run(pool, "--json", "token", "create", "--role", "write", "--volume", "imagenet"))["token"]
    reader = json.loads(run(pool, "--json", "token", "create", "--role", "read"))["token"]
    server, port = serve(pool)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(url, data=b"{}", method="POST"))
        assert refused.value.code == 401

        out = asyncio.run(http_calls(url, writer))
        assert "restore_snapshot" in out["tools"]
        assert [v["name"] for v in out["volumes"].structured_content["volumes"]] == ["imagenet"]
        assert not out["snapshot"].is_error, out["snapshot"].content
        assert out["clone"].structured_content["origin"] == "imagenet@h1"
        assert out["other"].is_error and "limited to volume imagenet" in out["other"].content[0].text

        read_only = asyncio.run(http_calls(url, reader))
        assert read_only["snapshot"].is_error and "needs write" in read_only["snapshot"].content[0].text

        audit = json.load(urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/audit", headers={"Authorization": f"Bearer {admin}"})))
        actions = [(e["action"], e["result"]) for e in audit]
        assert ("snapshot imagenet", "ok (mcp)") in actions
        assert ("clone imagenet@h1 into exp2", "ok (mcp)") in actions
        assert any(a == "snapshot imagenet" and o.startswith("failed (mcp)") for a, o in actions)
    finally:
        server.terminate()
        server.wait(timeout=30)
