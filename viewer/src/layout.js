// The dashboard's default layout (pure: no DOM, no network).

export const THEME = "Pro Dark";
export const METERS = "meters";
export const LATEST = "meters_latest";
const NEEDED = ["ts", "current", "voltage", "phase", "location", "groupid"];

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
                group_by: ["ts"],
                split_by: ["location"],
                columns: ["voltage"],
                aggregates: { voltage: "mean" },
            },
            current: {
                table: METERS,
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

export function gridLayout(table) {
    return {
        sizes: [1],
        detail: { main: { type: "tab-area", widgets: ["grid"], currentIndex: 0 } },
        viewers: { grid: { table, title: table, plugin: "Datagrid", theme: THEME, plugin_config: { edit_mode: "READ_ONLY" } } },
    };
}
