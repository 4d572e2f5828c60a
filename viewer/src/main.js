// The dashboard: a <perspective-workspace> over the server's live tables, with a status line,
// a saved layout, and reconnection. Every asset is bundled: nothing comes from another origin.
import "@perspective-dev/viewer-datagrid";
import "@perspective-dev/viewer-d3fc";
import "@perspective-dev/workspace";
import perspective from "@perspective-dev/client";
import perspective_viewer from "@perspective-dev/viewer";
import VIEWER_WASM from "@perspective-dev/viewer/dist/wasm/perspective-viewer.wasm";
import "@perspective-dev/viewer/dist/css/themes.css";
import "@perspective-dev/workspace/dist/css/pro.css";
import "./style.css";

import { History } from "./history.js";
import { LATEST, METERS, fitsMeters, gridLayout, metersLayout, upgradeLayout } from "./layout.js";

// v2: the default views read the server's aggregates. A layout saved before (views over the raw
// window, each costing the server in proportion to the window on every update) is not restored.
const STORAGE_KEY = "meters-dashboard-layout-v2";
localStorage.removeItem("meters-dashboard-layout");
const HEALTH_EVERY_MS = 2000;
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000];
// The server's own status table (server/status.py: `<SERVER_TABLE>_status`, refreshed each second).
const STATUS_SUFFIX = "_status";
const STATUS_STALE_MS = 10_000;

const statusEl = document.getElementById("dashboard-status");
const metricsEl = document.getElementById("dashboard-metrics");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const state = {
    socket: "connecting", connectedOnce: false, tab: "live", health: null, ownStatus: null, ownStatusAt: 0, generation: 0, client: null,
    defaultLayout: null, layout: null, workspace: document.getElementById("workspace"),
};
const history = new History(document.getElementById("history-container"), document.getElementById("history-message"));
state.history = history;
window.dashboard = state; // for debugging and the browser tests; the server is read-only anyway

function websocketUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/websocket`;
}

// --- status line -------------------------------------------------------------------------------------

/** The status row of the server this page's socket is connected to, while it is fresh. With
 * `--scale server=N` nginx may send /healthz to any replica: that answer describes some server,
 * the row over the page's own socket describes its own. */
function ownStatus() {
    // by when it arrived here, not by its `updated`: the browser's clock need not agree with the server's
    const own = state.ownStatus;
    return own && state.socket !== "reconnecting" && Date.now() - state.ownStatusAt < STATUS_STALE_MS ? own : null;
}

// What the page waits for, most basic first: the server (its WebSocket, its status table or
// /healthz), then the database behind it, then the tables.
function render() {
    const health = ownStatus() || state.health;
    let label, kind;
    if (state.socket === "reconnecting") {
        [label, kind] = ["reconnecting…", "reconnecting"];
    } else if (state.socket === "connected" && state.ownStatus && !ownStatus()) {
        // its server sent no status for 10 s: its engine is stuck (it exits and is restarted,
        // SERVER_ENGINE_STUCK_AFTER) or the socket is half-open
        [label, kind] = ["server not responding", "unreachable"];
    } else if (state.socket === "unreachable" || health === "unreachable") {
        [label, kind] = ["server unreachable", "unreachable"];
    } else if (!health) {
        [label, kind] = ["connecting…", "connecting"];  // no answer from /healthz yet
    } else if (!health.database_reachable || health.waiting_for || health.rows_delivered === 0) {
        [label, kind] = ["waiting for database", "waiting"];
    } else if (state.socket === "connected") {
        [label, kind] = ["connected", "connected"];
    } else {
        [label, kind] = ["connecting…", "connecting"];
    }
    statusEl.textContent = label;
    statusEl.dataset.state = kind;
    if (health && health !== "unreachable" && health.lag_ms != null) {
        const server = health.instance ? ` · server ${health.instance}` : "";
        metricsEl.textContent = `lag ${(health.lag_ms / 1000).toFixed(1)} s · ${Math.round(health.rows_per_s)} rows/s${server}`;
    } else {
        metricsEl.textContent = "";
    }
}

/** The server's /healthz JSON (200, or 503 saying why); throws when no server answered. */
async function health() {
    const response = await fetch("/healthz", { cache: "no-store" });
    // With no server behind it nginx answers 502 or 504 itself, with an HTML page: that is not
    // the server speaking, whatever the status.
    if (!(response.headers.get("Content-Type") || "").includes("application/json")) {
        throw new Error(`/healthz: ${response.status} without the server's JSON`);
    }
    const body = await response.json();
    if (!body || typeof body !== "object") throw new Error("/healthz: not a JSON object");
    return body;
}

async function watchHealth() {
    for (;;) {
        if (!ownStatus()) {  // while the page's own server tells its status, /healthz is not asked
            try {
                state.health = await health();
            } catch {
                state.health = "unreachable";
            }
        }
        render();
        await sleep(HEALTH_EVERY_MS);
    }
}

/** Follow the status table of the server behind `client` (none on an older server: /healthz then). */
async function watchOwnStatus(client, generation) {
    const name = (await client.get_hosted_table_names()).find((table) => table.endsWith(STATUS_SUFFIX));
    if (!name || generation !== state.generation) return;
    const view = await (await client.open_table(name)).view();
    const read = async () => {
        if (generation !== state.generation) return;
        const rows = await view.to_json();
        if (rows.length) {
            state.ownStatus = rows[0];
            state.ownStatusAt = Date.now();
            render();
        }
    };
    await view.on_update(read);
    await read();
}

// --- layout ----------------------------------------------------------------------------------------

function savedLayout() {
    try {
        return JSON.parse(localStorage.getItem(STORAGE_KEY));
    } catch {
        return null;
    }
}

async function saveLayout(workspace) {
    state.layout = await workspace.save();
    localStorage.setItem(STORAGE_KEY, JSON.stringify(state.layout));
}

document.getElementById("reset-layout").addEventListener("click", async () => {
    if (state.tab === "history") {
        await history.resetLayout();
        return;
    }
    localStorage.removeItem(STORAGE_KEY);
    if (state.defaultLayout) {
        state.layout = state.defaultLayout;
        await state.workspace.restore(state.defaultLayout);
    }
});

// --- tabs: the live window, or the whole history ------------------------------------------------

function showTab(tab) {
    state.tab = tab;
    const live = tab === "live";
    document.getElementById("tab-live").setAttribute("aria-selected", String(live));
    document.getElementById("tab-history").setAttribute("aria-selected", String(!live));
    state.workspace.hidden = !live;
    document.getElementById("history").hidden = live;
    if (!live) history.show();
    window.dispatchEvent(new Event("resize"));  // a workspace shown again lays itself out anew
}
document.getElementById("tab-live").addEventListener("click", () => showTab("live"));
document.getElementById("tab-history").addEventListener("click", () => showTab("history"));

/** A new workspace element per connection: the old one's views died with the old socket. */
function freshWorkspace() {
    const workspace = document.createElement("perspective-workspace");
    workspace.id = "workspace";
    workspace.hidden = state.tab === "history";
    state.workspace.replaceWith(workspace);
    state.workspace = workspace;
    workspace.addEventListener("workspace-layout-update", () => saveLayout(workspace));
    return workspace;
}

// --- connection ------------------------------------------------------------------------------------

async function connect() {
    for (let attempt = 0; ; attempt++) {
        try {
            return await perspective.websocket(websocketUrl());
        } catch {
            // A page that had its tables says it reconnects; after that first retry, or when it
            // never reached the server, it says the server is unreachable.
            state.socket = attempt === 0 && state.connectedOnce ? "reconnecting" : "unreachable";
            render();
            await sleep(BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)]);
        }
    }
}

async function hostedTables(client, generation) {
    // The server creates its tables once the database exists: wait for them (its status table is
    // there from the start, and is not one of them).
    for (;;) {
        const names = (await client.get_hosted_table_names()).filter((table) => !table.endsWith(STATUS_SUFFIX));
        // The server hosts its two tables one after the other: wait for both.
        const partial = names.includes(METERS) !== names.includes(LATEST);
        if ((names.length && !partial) || generation !== state.generation) {
            return names;
        }
        await sleep(1000);
    }
}

async function start() {
    const generation = ++state.generation;
    const client = await connect();
    state.client = client;
    state.ownStatus = null;  // the status of the server this socket reaches, once it comes
    state.socket = "connecting";  // the server answers: from here on its status says what is missing
    render();
    watchOwnStatus(client, generation).catch((error) => console.warn("dashboard: no status table", error));
    client.on_error(() => {
        if (generation === state.generation) {
            state.socket = "reconnecting";
            render();
            start();
        }
    });
    try {
        const names = await hostedTables(client, generation);
        if (generation !== state.generation) return;
        if (!state.defaultLayout) {
            const table = names.includes(METERS) ? METERS : names[0];
            const schema = await (await client.open_table(table)).schema();
            state.defaultLayout = names.includes(LATEST) && fitsMeters(schema, names) ? metersLayout() : gridLayout(table);
            state.layout = upgradeLayout(savedLayout()) || state.defaultLayout;
        }
        const workspace = freshWorkspace();
        await workspace.load(client);
        await workspace.restore(state.layout);
        state.socket = "connected";
        state.connectedOnce = true;
        render();
    } catch (error) {
        console.warn("dashboard: reconnecting after", error);
        if (generation === state.generation) {
            state.socket = "reconnecting";
            render();
            await sleep(1000);
            start();
        }
    }
}

await perspective_viewer.init_client(fetch(VIEWER_WASM));
render();
watchHealth();
start();
