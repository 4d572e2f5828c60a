// The History view: a second <perspective-workspace>, over /history (the server's history
// explorer, whose views TDengine computes). Connected only when first shown, so a page that stays
// on the live view costs the database nothing; its layout is saved like the live one.
import perspective from "@perspective-dev/client";

import { HISTORY, historyLayout } from "./layout.js";

const STORAGE_KEY = "meters-history-layout-v1";
const WAIT_MS = 2000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function historyUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/history`;
}

function savedLayout() {
    try {
        return JSON.parse(localStorage.getItem(STORAGE_KEY));
    } catch {
        return null;
    }
}

export class History {
    constructor(container, messageEl) {
        this.container = container;
        this.messageEl = messageEl;
        this.workspace = null;
        this.generation = 0;
        this.started = false;
        this.state = "idle";  // idle | connecting | waiting | ready | reconnecting
    }

    show() {
        if (!this.started) {
            this.started = true;
            this.start();
        }
    }

    say(state, text) {
        this.state = state;
        this.messageEl.textContent = text;
        this.messageEl.hidden = state === "ready";
        this.messageEl.dataset.state = state;
    }

    async resetLayout() {
        localStorage.removeItem(STORAGE_KEY);
        if (this.workspace) await this.workspace.restore(historyLayout());
    }

    async start() {
        const generation = ++this.generation;
        this.say("connecting", "connecting to the history…");
        let client;
        for (let attempt = 0; !client; attempt++) {
            try {
                client = await perspective.websocket(historyUrl());
            } catch {
                this.say("reconnecting", "history unreachable: retrying…");
                await sleep(Math.min(500 * 2 ** attempt, 8000));
            }
        }
        client.on_error(() => {
            if (generation === this.generation) this.start();
        });
        try {
            // An empty database, or one without the supertable yet: nothing to show, no error.
            while (!(await client.get_hosted_table_names()).includes(HISTORY)) {
                this.say("waiting", "waiting for data");
                await sleep(WAIT_MS);
                if (generation !== this.generation) return;
            }
            const workspace = document.createElement("perspective-workspace");
            workspace.id = "history-workspace";
            this.container.replaceChildren(workspace);
            this.workspace = workspace;
            workspace.addEventListener("workspace-layout-update", async () => {
                localStorage.setItem(STORAGE_KEY, JSON.stringify(await workspace.save()));
            });
            await workspace.load(client);
            const saved = savedLayout();
            try {
                await workspace.restore(saved || historyLayout());
            } catch (error) {
                if (!saved) throw error;
                console.warn("history: the saved layout failed, restoring the default", error);
                localStorage.removeItem(STORAGE_KEY);
                await workspace.restore(historyLayout());
            }
            this.say("ready", "");
        } catch (error) {
            console.warn("history: reconnecting after", error);
            if (generation === this.generation) {
                await sleep(WAIT_MS);
                this.start();
            }
        }
    }
}
