// Headless dashboards for bench/fanout.py and bench/soak.py: N Perspective 4.3.0 JS clients in one
// Node process, each holding the views of the page's default layout (viewer/src/layout.js,
// imported, so the benchmark cannot drift from the page), plus one latency probe.
//
//     node bench/dashboards.mjs --server ws://localhost:3000/websocket [--viewport-rows 100] [--reads viewer]
//
// It is driven by JSON lines on stdin and answers with JSON lines on stdout (nothing else is
// printed there; diagnostics go to stderr):
//     {"op": "open", "dashboards": N}   open or close dashboards until N are open -> {"event": "opened", ...}
//     {"op": "reset"}                   start a new measurement                  -> {"event": "reset"}
//     {"op": "stats"}                   figures since the last reset             -> {"event": "stats", ...}
//     {"op": "quit"}                    close everything and exit
//
// Each dashboard is its own WebSocket connection (a browser tab). Its views are made from the
// layout's viewer configs the way the 4.3.0 <perspective-viewer> makes them (recorded in Chromium
// against this layout): the view keys of the config, plus the plugin-advised rollup mode "flat" for
// charts. Each view's on_update is registered without a mode (the viewer asks for no row deltas);
// on every notification the view is re-read as the viewer does: with --reads viewer (default) the
// requests the 4.3.0 viewer sent per update, recorded in Chromium (datagrid: dimensions, schema,
// dimensions x2, to_columns_string of the viewport with id, dimensions; chart: dimensions x2,
// schema, to_columns_string of the viewport, expression_schema, schema, get_config, table schema);
// with --reads viewport only the to_columns_string of the viewport. The viewport is rows
// 0..--viewport-rows of every column. Like the viewer, a view never has two re-reads in flight:
// notifications that arrive during a re-read are served by the next one (they are counted as
// coalesced). The re-read time of a notification is from its arrival until the to_columns_string
// of the re-read that serves it has completed.
//
// The probe is one more connection with one view: flat, unsorted, only the time column, of the
// latest-per-meter table (--probe-table, default the layout's LATEST), with on_update in "row"
// mode, so each notification carries exactly the rows the update changed (Arrow IPC): every
// meter's new reading, each tick. Every row is timed: latency = arrival (Date.now()) - its ts.
// Not the window table: the page holds no view on it, and any view there, even a flat one, costs
// the server a pass over the whole window on every update (perspective-python 4.3.0, 1,000
// meters x 10 min: a 1,000-row update took 8 ms with no view, 300 ms with a flat ["ts"] view,
// 370 ms with it in row mode; the latest table: 5.5 ms, 6.1 ms with the probe). A probe there
// would be the heaviest client of all and delay every dashboard's re-read behind it.
// --probe-prefix NAME times only the subtables whose names begin with NAME (bench/freshness.py's
// own meters), through a filter of the probe's view.

import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import readline from "node:readline";

import { LATEST, metersLayout } from "../viewer/src/layout.js";

const require = createRequire(new URL("../viewer/package.json", import.meta.url));
const perspective = (await import(require.resolve("@perspective-dev/client"))).default;

const VIEW_KEYS = ["group_by", "split_by", "columns", "aggregates", "sort", "filter", "expressions",
    "group_rollup_mode"];

function option(name, fallback) {
    const at = process.argv.indexOf(`--${name}`);
    return at > 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

const SERVER = option("server", "ws://localhost:3000/websocket");
const VIEWPORT_ROWS = Number(option("viewport-rows", "100"));
const READS = option("reads", "viewer");
const TIME_COLUMN = option("time-column", "ts");
const PROBE_TABLE = option("probe-table", LATEST);
const PROBE_PREFIX = option("probe-prefix", ""); // only the subtables whose names begin with it
if (!["viewer", "viewport"].includes(READS)) {
    throw new Error(`--reads must be viewer or viewport, not ${READS}`);
}

const say = (object) => process.stdout.write(JSON.stringify(object) + "\n");
// stdout carries only the answers: the client's own console output (e.g. "Closing WebSocket") goes to stderr
for (const name of ["log", "info", "debug"]) console[name] = (...args) => process.stderr.write(args.join(" ") + "\n");
const warn = (text) => process.stderr.write(`dashboards: ${text}\n`);

/** The dashboard's views: [{name, table, plugin, config}] from the page's own layout. */
export function dashboardViews(layout = metersLayout()) {
    return Object.entries(layout.viewers).map(([name, viewer]) => {
        const config = {};
        for (const key of VIEW_KEYS) {
            if (viewer[key] !== undefined) config[key] = structuredClone(viewer[key]);
        }
        if (viewer.plugin !== "Datagrid" && config.group_rollup_mode === undefined) {
            config.group_rollup_mode = "flat"; // what the 4.3.0 viewer sets for every chart plugin
        }
        return { name, table: viewer.table, plugin: viewer.plugin, config };
    });
}

// --- figures -------------------------------------------------------------------------------------------

/** Counts per integer key: a histogram that is cheap to fill and to ship. */
class Histogram {
    constructor() { this.counts = new Map(); this.total = 0; }
    add(key, count = 1) {
        this.counts.set(key, (this.counts.get(key) || 0) + count);
        this.total += count;
    }
    pairs() { return [...this.counts.entries()]; }
}

let stats;

function resetStats() {
    stats = {
        since: Date.now(),
        probe: { latency_ms: new Histogram(), updates: 0, ticks: new Map(), parse_errors: 0 },
        views: {}, // name -> {notifications, reads, coalesced, errors, reread_01ms: Histogram}
        errors: [],
        error_count: 0,
    };
}
resetStats();

function viewStats(name) {
    return stats.views[name] ||= { notifications: 0, reads: 0, coalesced: 0, errors: 0, reread_01ms: new Histogram(),
        columns_01ms: new Histogram(), first_01ms: new Histogram() };
}

function recordError(where, error) {
    stats.error_count += 1;
    if (stats.errors.length < 20) stats.errors.push(`${where}: ${error && error.message ? error.message : error}`);
}

// --- Arrow IPC: just enough to read one fixed-width column of a row delta ------------------------------

// A flatbuffer table: the field at slot `slot`, or -1 when absent.
function field(view, table, slot) {
    const vtable = table - view.getInt32(table, true);
    const vtableSize = view.getUint16(vtable, true);
    const at = 4 + 2 * slot;
    if (at >= vtableSize) return -1;
    const offset = view.getUint16(vtable + at, true);
    return offset === 0 ? -1 : table + offset;
}
const deref = (view, at) => at + view.getUint32(at, true);
const vector = (view, at) => { const start = deref(view, at); return [start + 4, view.getUint32(start, true)]; };

function readString(view, at) {
    const start = deref(view, at);
    const length = view.getUint32(start, true);
    return new TextDecoder().decode(new Uint8Array(view.buffer, view.byteOffset + start + 4, length));
}

// Arrow's Type union ids and how many buffers each of the types a flat view can carry has.
const TYPE = { Int: 2, FloatingPoint: 3, Binary: 4, Utf8: 5, Bool: 6, Date: 8, Time: 9, Timestamp: 10, LargeUtf8: 20 };
const BUFFERS = { 2: 2, 3: 2, 4: 3, 5: 3, 6: 2, 8: 2, 9: 2, 10: 2, 20: 3 };

/** The values of column `name` (Timestamp, Date(ms), Int64/32, Float64/32) of an Arrow IPC stream. */
export function arrowColumn(bytes, name) {
    const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    let pos = 0, columns = null, out = [];
    while (pos + 8 <= data.byteLength) {
        let length = view.getInt32(pos, true);
        pos += 4;
        if (length === -1) { length = view.getInt32(pos, true); pos += 4; } // continuation marker
        if (length === 0) break; // end of stream
        const meta = new DataView(data.buffer, data.byteOffset + pos, length);
        const message = deref(meta, 0);
        const headerType = meta.getUint8(field(meta, message, 1));
        const header = deref(meta, field(meta, message, 2));
        const bodyAt = field(meta, message, 3);
        const bodyLength = bodyAt < 0 ? 0 : Number(meta.getBigInt64(bodyAt, true));
        const body = pos + length;
        if (headerType === 1) { // Schema: [{name, type, width, bufferIndex}]
            columns = [];
            const [first, count] = vector(meta, field(meta, header, 1));
            let buffer = 0;
            for (let i = 0; i < count; i++) {
                const f = deref(meta, first + 4 * i);
                const fname = readString(meta, field(meta, f, 0));
                const typeType = meta.getUint8(field(meta, f, 2));
                const typeTable = deref(meta, field(meta, f, 3));
                const dictionary = field(meta, f, 4) >= 0;
                let kind = null, width = 8;
                if (!dictionary && (typeType === TYPE.Timestamp || typeType === TYPE.Date)) kind = "int";
                if (!dictionary && typeType === TYPE.Int) {
                    const bits = field(meta, typeTable, 0) < 0 ? 0 : meta.getInt32(field(meta, typeTable, 0), true);
                    kind = "int"; width = bits / 8;
                }
                if (!dictionary && typeType === TYPE.FloatingPoint) {
                    const precision = field(meta, typeTable, 0) < 0 ? 0 : meta.getInt16(field(meta, typeTable, 0), true);
                    kind = "float"; width = precision === 2 ? 8 : 4;
                }
                if (field(meta, f, 5) >= 0 && vector(meta, field(meta, f, 5))[1] > 0) {
                    throw new Error(`column ${fname}: nested types are not read here`);
                }
                columns.push({ name: fname, kind, width, buffer });
                buffer += dictionary ? 2 : (BUFFERS[typeType] || 2);
            }
        } else if (headerType === 3) { // RecordBatch
            if (!columns) throw new Error("record batch before schema");
            if (field(meta, header, 3) >= 0) throw new Error("compressed Arrow bodies are not read here");
            const column = columns.find((c) => c.name === name);
            if (!column || !column.kind) throw new Error(`no fixed-width column ${name} in the delta`);
            const rows = Number(meta.getBigInt64(field(meta, header, 0), true));
            const [buffers] = vector(meta, field(meta, header, 2));
            const validity = buffers + 16 * column.buffer;
            const values = buffers + 16 * (column.buffer + 1);
            const validLength = Number(meta.getBigInt64(validity + 8, true));
            const validAt = body + Number(meta.getBigInt64(validity, true));
            const valuesAt = body + Number(meta.getBigInt64(values, true));
            for (let r = 0; r < rows; r++) {
                if (validLength > 0 && !(data[validAt + (r >> 3)] & (1 << (r & 7)))) continue; // null
                const at = valuesAt + r * column.width;
                let value;
                if (column.kind === "float") value = column.width === 8 ? view.getFloat64(at, true) : view.getFloat32(at, true);
                else if (column.width === 8) value = Number(view.getBigInt64(at, true));
                else if (column.width === 4) value = view.getInt32(at, true);
                else if (column.width === 2) value = view.getInt16(at, true);
                else value = view.getInt8(at);
                out.push(value);
            }
        }
        pos = body + bodyLength;
    }
    return out;
}

// --- dashboards ----------------------------------------------------------------------------------------

async function waitForTables(client, names, timeoutMs = 60000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const hosted = await client.get_hosted_table_names();
        if (names.every((n) => hosted.includes(n))) return;
        if (Date.now() > deadline) throw new Error(`the server hosts ${hosted}, not ${names}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
    }
}

class Dashboard {
    constructor(index) {
        this.index = index;
        this.views = [];
        this.closed = false;
    }

    async open() {
        this.client = await perspective.websocket(SERVER);
        this.client.on_error((error) => { if (!this.closed) recordError(`dashboard ${this.index} client`, error); });
        const specs = dashboardViews();
        await waitForTables(this.client, [...new Set(specs.map((s) => s.table))]);
        const tables = {};
        for (const spec of specs) {
            tables[spec.table] ||= await this.client.open_table(spec.table);
            const view = await tables[spec.table].view(spec.config);
            const entry = { ...spec, view, tableHandle: tables[spec.table], busy: false, pending: [] };
            this.views.push(entry);
            await this.reread(entry, false); // the first render
            await view.on_update(() => this.notified(entry));
        }
    }

    notified(entry) {
        if (this.closed) return;
        const s = viewStats(entry.name);
        s.notifications += 1;
        if (entry.busy) s.coalesced += 1;
        entry.pending.push(performance.now());
        if (!entry.busy) entry.serving = this.serve(entry);
    }

    async serve(entry) {
        entry.busy = true;
        try {
            while (entry.pending.length && !this.closed) {
                const waiting = entry.pending;
                entry.pending = [];
                const s = viewStats(entry.name);
                try {
                    const [first, done] = await this.reread(entry, true);
                    s.reads += 1;
                    for (const at of waiting) {
                        s.reread_01ms.add(Math.round((done - at) * 10));
                        s.first_01ms.add(Math.round((first - at) * 10));
                    }
                } catch (error) {
                    if (this.closed) return;
                    s.errors += 1;
                    recordError(`dashboard ${this.index} ${entry.name}`, error);
                }
            }
        } finally {
            entry.busy = false;
        }
    }

    /** One re-read as the viewer does it: [performance.now() of the first reply, of the viewport data]. */
    async reread(entry, afterUpdate) {
        const view = entry.view;
        const window = { start_row: 0, end_row: VIEWPORT_ROWS };
        const grid = entry.plugin === "Datagrid";
        if (grid) window.id = true;
        const viewport = async () => { // the viewport's own round trip is timed too
            const asked = performance.now();
            JSON.parse(await view.to_columns_string(window));
            const done = performance.now();
            if (afterUpdate) viewStats(entry.name).columns_01ms.add(Math.round((done - asked) * 10));
            return done;
        };
        if (READS === "viewport" || !afterUpdate) {
            const done = await viewport();
            return [done, done];
        }
        let first, done;
        if (grid) {
            await view.dimensions();
            first = performance.now();
            await view.schema();
            await Promise.all([view.dimensions(), view.dimensions()]);
            done = await viewport();
            await view.dimensions();
        } else {
            await Promise.all([view.dimensions(), view.dimensions()]);
            first = performance.now();
            await view.schema();
            done = await viewport();
            await Promise.all([view.expression_schema(), view.schema(), view.get_config(), entry.tableHandle.schema()]);
        }
        return [first, done];
    }

    /** Stop re-reading; with `deleteViews`, delete the views once no re-read is in flight (a
     * page that is closed deletes nothing: its socket just goes away). */
    async close(deleteViews = true) {
        this.closed = true;
        await Promise.all(this.views.map((entry) => entry.serving));
        if (deleteViews) {
            for (const entry of this.views) {
                try { await entry.view.delete(); } catch { /* the socket may be gone already */ }
            }
        }
        try { await this.client.terminate(); } catch { /* ditto */ }
    }
}

class Probe {
    async open() {
        this.client = await perspective.websocket(SERVER);
        this.client.on_error((error) => recordError("probe client", error));
        await waitForTables(this.client, [PROBE_TABLE]);
        const table = await this.client.open_table(PROBE_TABLE);
        const config = { columns: [TIME_COLUMN] };
        if (PROBE_PREFIX) config.filter = [["tbname", "begins with", PROBE_PREFIX]];
        this.view = await table.view(config);
        await this.view.on_update(({ delta }) => {
            const arrival = Date.now();
            if (!delta) return;
            const probe = stats.probe;
            probe.updates += 1;
            let stamps;
            try {
                stamps = arrowColumn(delta, TIME_COLUMN);
            } catch (error) {
                probe.parse_errors += 1;
                recordError("probe delta", error);
                return;
            }
            for (const ts of stamps) {
                probe.latency_ms.add(arrival - ts);
                probe.ticks.set(ts, (probe.ticks.get(ts) || 0) + 1);
            }
        }, { mode: "row" });
    }
}

// --- commands ------------------------------------------------------------------------------------------

const dashboards = [];
let probe = null;

async function open(count) {
    const started = performance.now();
    if (!probe) {
        probe = new Probe();
        await probe.open();
    }
    while (dashboards.length > count) await dashboards.pop().close();
    const opening = [];
    while (dashboards.length + opening.length < count) {
        const dashboard = new Dashboard(dashboards.length + opening.length);
        opening.push(dashboard.open().then(() => dashboard));
    }
    dashboards.push(...await Promise.all(opening));
    return { event: "opened", dashboards: dashboards.length, views: dashboards.length * dashboardViews().length,
        ms: Math.round(performance.now() - started) };
}

function report() {
    const probe = stats.probe;
    const views = {};
    for (const [name, s] of Object.entries(stats.views)) {
        views[name] = { notifications: s.notifications, reads: s.reads, coalesced: s.coalesced, errors: s.errors,
            reread_01ms: s.reread_01ms.pairs(), columns_01ms: s.columns_01ms.pairs(), first_01ms: s.first_01ms.pairs() };
    }
    const memory = process.memoryUsage();
    return {
        event: "stats", dashboards: dashboards.length, seconds: (Date.now() - stats.since) / 1000,
        probe: { rows: probe.latency_ms.total, updates: probe.updates, parse_errors: probe.parse_errors,
            latency_ms: probe.latency_ms.pairs(), ticks: [...probe.ticks.entries()] },
        views, errors: stats.errors, error_count: stats.error_count,
        heap_mb: Math.round(memory.heapUsed / 1048576), reads: READS, viewport_rows: VIEWPORT_ROWS,
    };
}

async function handle(line) {
    let command;
    try {
        command = JSON.parse(line);
    } catch {
        return say({ event: "error", error: `not JSON: ${line.slice(0, 200)}` });
    }
    try {
        if (command.op === "open") say(await open(Number(command.dashboards)));
        else if (command.op === "reset") { resetStats(); say({ event: "reset" }); }
        else if (command.op === "stats") say(report());
        else if (command.op === "quit") {
            await Promise.all(dashboards.splice(0).map((dashboard) => dashboard.close(false)));
            say({ event: "bye" });
            process.exit(0);
        } else say({ event: "error", error: `unknown op ${command.op}` });
    } catch (error) {
        say({ event: "error", op: command.op, error: String(error && error.message ? error.message : error) });
    }
}

process.on("unhandledRejection", (error) => recordError("unhandled", error));

const lines = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on("line", (line) => { queue = queue.then(() => handle(line)); });
lines.on("close", () => { queue.then(() => process.exit(0)); });
say({ event: "ready", server: SERVER, views: dashboardViews().map((v) => v.name), latest: LATEST, reads: READS });
