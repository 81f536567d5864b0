"""`shale mcp` with the official MCP Python SDK as its client, over stdio:
the tools and their schemas and hints, snapshot and clone called, a
failure answered as a tool error with Shale's message."""

import asyncio
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
