// The dashboard's default layout (pure: no DOM, no network).

export const THEME = "Pro Dark";
export const METERS = "meters";
export const LATEST = "meters_latest";
// The server's live aggregates (server/aggregates.py): means per location and 10-s bucket over the
// window, and per location of each meter's latest reading.
export const TREND = "meters_trend";
export const BY_LOCATION = "meters_by_location";
const NEEDED = ["ts", "current", "voltage", "phase", "location", "groupid"];

// A chart over the raw window would plot raw timestamps: a line chart draws at most 4,000 points
// (d3fc's Y Line max_cells), and 600 timestamps x 10 locations drew only the oldest two thirds of
// the window ("Rendering 60% of points"). Saved charts of that shape get 10-second buckets.
export const TIME_BUCKET = "ts (10 s)";
export const TIME_BUCKET_EXPRESSION = `bucket("ts", '10s')`;

/** A workspace of two rows of two viewers: `rows` of widget names, the rows' heights and each row's widths. */
function twoByTwo(rows, heights, widths) {
    const tab = (widget) => ({ type: "tab-area", widgets: [widget], currentIndex: 0 });
    const row = (widgets, sizes) => ({ type: "split-area", orientation: "horizontal", sizes, children: widgets.map(tab) });
    return {
        main: {
            type: "split-area",
            orientation: "vertical",
            sizes: heights,
            children: [row(rows[0], widths[0]), row(rows[1], widths[1])],
        },
    };
}

/**
 * The meters layout fits a server that hosts the meters columns and the aggregates; anything else
 * gets a plain grid.
 */
export function fitsMeters(schema, names = [TREND, BY_LOCATION]) {
    return NEEDED.every((column) => column in schema) && [TREND, BY_LOCATION].every((name) => names.includes(name));
}

// Every view of the default layout reads a small table. Perspective redoes a view's work on each
// update in proportion to its table, and each dashboard holds views of its own: views over the
// raw window (600,000 rows at 1,000 meters) cost the server seconds per update per dashboard
// (issue 12). The grid and charts read the aggregates (600 and 10 rows at the defaults); the
// per-meter grid reads the latest table, unsorted: an indexed table is listed in index order.
export function metersLayout() {
    const readOnly = { edit_mode: "READ_ONLY" };
    return {
        sizes: [1],
        detail: twoByTwo([["grid", "latest"], ["voltage", "current"]], [0.55, 0.45], [[0.6, 0.4], [0.6, 0.4]]),
        viewers: {
            grid: {
                table: TREND,
                title: "Meters by location (window)",
                plugin: "Datagrid",
                theme: THEME,
                settings: false,
                group_by: ["location"],
                columns: ["ts", "current", "voltage", "phase", "readings"],
                // the mean of the raw rows: each bucket's mean weighted by the readings it holds
                aggregates: {
                    ts: "max",
                    current: ["weighted mean", ["readings"]],
                    voltage: ["weighted mean", ["readings"]],
                    phase: ["weighted mean", ["readings"]],
                    readings: "sum",
                },
                plugin_config: readOnly,
            },
            latest: {
                table: LATEST,
                title: "Latest reading per meter",
                plugin: "Datagrid",
                theme: THEME,
                columns: ["tbname", "ts", "current", "voltage", "phase", "location", "groupid"],
                plugin_config: readOnly,
            },
            voltage: {
                table: TREND,
                title: "Voltage by location",
                plugin: "Y Line",
                theme: THEME,
                group_by: ["ts"],
                split_by: ["location"],
                columns: ["voltage"],
                aggregates: { voltage: "mean" },
            },
            // The mean of each meter's latest reading, per location: it moves with every tick.
            current: {
                table: BY_LOCATION,
                title: "Current by location",
                plugin: "Y Bar",
                theme: THEME,
                group_by: ["location"],
                columns: ["current"],
                aggregates: { current: "mean" },
            },
        },
    };
}

/**
 * A layout saved by an earlier version of the page may chart raw timestamps of the window table
 * (group_by ["ts"]), which hides the newest minutes once the window holds more points than the
 * chart draws: such charts get the time buckets instead. Everything else is left as saved.
 */
export function upgradeLayout(layout) {
    if (!layout || typeof layout !== "object" || !layout.viewers) return layout;
    for (const config of Object.values(layout.viewers)) {
        const rawTime = config && config.table === METERS && config.plugin !== "Datagrid"
            && Array.isArray(config.group_by) && config.group_by.length === 1 && config.group_by[0] === "ts";
        if (rawTime) {
            config.expressions = { ...(config.expressions || {}), [TIME_BUCKET]: TIME_BUCKET_EXPRESSION };
            config.group_by = [TIME_BUCKET];
        }
    }
    return layout;
}

export function gridLayout(table) {
    return {
        sizes: [1],
        detail: { main: { type: "tab-area", widgets: ["grid"], currentIndex: 0 } },
        viewers: { grid: { table, title: table, plugin: "Datagrid", theme: THEME, plugin_config: { edit_mode: "READ_ONLY" } } },
    };
}

// --- the History view: the whole database, computed by TDengine (server/history) ----------------

export const HISTORY = "meters_history";
export const HOUR = "ts (1 h)";
export const HOUR_EXPRESSION = `bucket("ts", '1h')`;

/**
 * What the live window cannot show: per-location means in hourly buckets over everything the
 * database keeps (7 days by default), the hours pivoted by location, and the meters of each
 * location with the lowest voltage they ever reported first. Each view is one query per level
 * in TDengine; only the rows on screen travel.
 */
export function historyLayout() {
    const hourly = { expressions: { [HOUR]: HOUR_EXPRESSION }, group_by: [HOUR], split_by: ["location"] };
    return {
        sizes: [1],
        detail: twoByTwo([["history-voltage", "history-current"], ["history-hours", "history-meters"]],
            [0.5, 0.5], [[0.5, 0.5], [0.6, 0.4]]),
        viewers: {
            "history-voltage": {
                table: HISTORY, title: "Voltage by location, hourly", plugin: "Y Line", theme: THEME,
                ...hourly, columns: ["voltage"], aggregates: { voltage: "mean" },
            },
            "history-current": {
                table: HISTORY, title: "Current by location, hourly", plugin: "Y Line", theme: THEME,
                ...hourly, columns: ["current"], aggregates: { current: "mean" },
            },
            "history-hours": {
                table: HISTORY, title: "Hours by location (mean voltage)", plugin: "Datagrid", theme: THEME,
                ...hourly, columns: ["voltage"], aggregates: { voltage: "mean" },
            },
            "history-meters": {
                table: HISTORY, title: "Meters by location, lowest voltage first", plugin: "Datagrid", theme: THEME,
                group_by: ["location", "tbname"], columns: ["voltage", "current"],
                aggregates: { voltage: "min", current: "max" }, sort: [["voltage", "asc"]],
            },
        },
    };
}
