// The live connection: /dashboard/ws deltas on top of /dashboard/state snapshots.
//
// Every delta carries the server's sequence number; a snapshot says which number it
// is current to. While a snapshot (or a call's detail) is being fetched, deltas are
// held back, then replayed: only those newer than the snapshot apply. A call's page
// asks the server to "watch" it, and fetches the call once the server has said so. When the socket
// drops, it reconnects with backoff (0.5 s doubling to 15 s) and resyncs.

export async function getJSON(url) {
  const r = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (r.status === 401) {
    window.location.reload(); // the login has expired: the server shows its form
    throw new Error("signed out");
  }
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

export class Live {
  // handlers: snapshot(snap), detail(d), delta(msg, {rows, detail}), status(state, text)
  constructor(handlers) {
    this.h = handlers;
    this.rowSeq = 0;
    this.detailSeq = 0;
    this.watch = null;
    this.loading = 0;
    this.held = [];
    this.delay = 500;
    this.ws = null;
  }

  start() {
    this.connect();
  }

  connect() {
    const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${window.location.host}/dashboard/ws`);
    this.ws = ws;
    this.h.status("connecting", "connecting…");
    ws.addEventListener("open", () => {
      this.delay = 500;
      this.h.status("live", "live");
      this.sendWatch();
      this.resync();
    });
    ws.addEventListener("message", (m) => {
      let msg;
      try {
        msg = JSON.parse(m.data);
      } catch {
        return;
      }
      this.onMessage(msg);
    });
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return;
      const wait = this.delay;
      this.delay = Math.min(this.delay * 2, 15000);
      this.h.status("down", `connection lost; reconnecting in ${Math.round(wait / 100) / 10} s`);
      setTimeout(() => this.connect(), wait);
    });
  }

  sendWatch() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type: "watch", call_id: this.watch }));
    }
  }

  onMessage(msg) {
    if (msg.type === "hello") return;
    if (msg.type === "resync") {
      this.resync();
      return;
    }
    if (msg.type === "watching") {
      // the server now sends this call's lines: its detail fetched from here on misses none
      if (msg.call_id !== null && msg.call_id === this.watch) this.load(() => this.fetchDetail());
      return;
    }
    if (this.loading > 0) {
      this.held.push(msg);
      return;
    }
    this.apply(msg);
  }

  apply(msg) {
    const rows = msg.seq > this.rowSeq;
    const detail = this.watch !== null && msg.call_id === this.watch && msg.seq > this.detailSeq;
    if (rows || detail) this.h.delta(msg, { rows, detail });
  }

  async load(work) {
    this.loading += 1;
    try {
      await work();
    } catch (e) {
      this.h.status("down", `could not load: ${e.message}`);
    } finally {
      this.loading -= 1;
      if (this.loading === 0) {
        const held = this.held;
        this.held = [];
        held.forEach((m) => this.apply(m));
      }
    }
  }

  resync() {
    return this.load(async () => {
      const snap = await getJSON("/dashboard/state");
      this.rowSeq = snap.seq;
      this.h.snapshot(snap);
      if (this.watch !== null) await this.fetchDetail();
    });
  }

  async fetchDetail() {
    const id = this.watch;
    const d = await getJSON(`/dashboard/call/${encodeURIComponent(id)}`).catch((e) => {
      this.h.detail(null, id, e);
      return null;
    });
    if (d && this.watch === id) {
      this.detailSeq = d.seq;
      this.h.detail(d, id);
    }
  }

  setWatch(callId) {
    this.watch = callId;
    this.detailSeq = 0;
    this.sendWatch(); // the detail is fetched when the server answers "watching"
  }
}
