// The dashboard's default layout (pure: no DOM, no network).

export const THEME = "Pro Dark";
export const METERS = "meters";
export const LATEST = "meters_latest";
const NEEDED = ["ts", "current", "voltage", "phase", "location", "groupid"];

// The voltage chart plots 10-second buckets of time, not raw timestamps: a 10-minute window is 60
// points per location, whatever the fleet size or the reading interval. A line chart draws at most
// 4,000 points (d3fc's Y Line max_cells); 600 raw timestamps x 10 locations are 6,000, and the
// chart then drew only the oldest two thirds of the window ("Rendering 60% of points").
export const TIME_BUCKET = "ts (10 s)";
export const TIME_BUCKET_EXPRESSION = `bucket("ts", '10s')`;

/** The seed's layout fits a table with the meters columns; anything else gets a plain grid. */
export function fitsMeters(schema) {
    return NEEDED.every((column) => column in schema);
}

export function metersLayout() {
    const readOnly = { edit_mode: "READ_ONLY" };
    return {
        sizes: [1],
        detail: {
            main: {
                type: "split-area",
                orientation: "vertical",
                sizes: [0.55, 0.45],
                children: [
                    {
                        type: "split-area",
                        orientation: "horizontal",
                        sizes: [0.6, 0.4],
                        children: [
                            { type: "tab-area", widgets: ["grid"], currentIndex: 0 },
                            { type: "tab-area", widgets: ["latest"], currentIndex: 0 },
                        ],
                    },
                    {
                        type: "split-area",
                        orientation: "horizontal",
                        sizes: [0.6, 0.4],
                        children: [
                            { type: "tab-area", widgets: ["voltage"], currentIndex: 0 },
                            { type: "tab-area", widgets: ["current"], currentIndex: 0 },
                        ],
                    },
                ],
            },
        },
        viewers: {
            grid: {
                table: METERS,
                title: "Meters by location",
                plugin: "Datagrid",
                theme: THEME,
                settings: false,
                group_by: ["location"],
                columns: ["ts", "current", "voltage", "phase", "location", "groupid"],
                aggregates: {
                    current: "mean",
                    voltage: "mean",
                    phase: "last",
                    ts: "last",
                    groupid: "count",
                    location: "dominant",
                },
                plugin_config: readOnly,
            },
            latest: {
                table: LATEST,
                title: "Latest reading per meter",
                plugin: "Datagrid",
                theme: THEME,
                columns: ["tbname", "ts", "current", "voltage", "phase", "location", "groupid"],
                sort: [["tbname", "asc"]],
                plugin_config: readOnly,
            },
            voltage: {
                table: METERS,
                title: "Voltage by location",
                plugin: "Y Line",
                theme: THEME,
                expressions: { [TIME_BUCKET]: TIME_BUCKET_EXPRESSION },
                group_by: [TIME_BUCKET],
                split_by: ["location"],
                columns: ["voltage"],
                aggregates: { voltage: "mean" },
            },
            // The latest reading of each meter, averaged by location: it moves with every tick,
            // and costs the server a 1,000-row table, not a pass over the whole window (a mean over
            // the 600,000-row window is recomputed in full on every update).
            current: {
                table: LATEST,
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
