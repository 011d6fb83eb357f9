// Image loading for the viewer: a priority queue over fetch(), a bounded cache of decoded
// images, and patient retries while the server is still preparing a series (503 + Retry-After).
//
// Images on screen come first (priority 0); neighbours are prefetched by distance. Each
// viewport owns its prefetch list and replaces it whenever it moves, so stale prefetches never
// hold the connection. Images are kept as object URLs of their PNG bytes, already decoded.
//
// Images are known by a key (series, plane, index, window); `urlFor(key)` gives the URL to fetch
// now. Image URLs are signed and expire: `beforeLoad(key)` renews them when they are about to, and
// a 403 (an URL that expired anyway) renews them (`renew(key)`) and tries once more.

const MAX_RETRY_SECONDS = 180;

export class ImageLoader {
  constructor({
    urlFor = (key) => key,
    renew = async () => {},
    beforeLoad = async () => {},
    concurrency = 6,
    prefetchConcurrency = 4,
    maxEntries = 600,
    onAuthLost = () => {},
  } = {}) {
    this.urlFor = urlFor;
    this.renew = renew;
    this.beforeLoad = beforeLoad;
    this.concurrency = concurrency;
    this.prefetchConcurrency = prefetchConcurrency;
    this.maxEntries = maxEntries;
    this.onAuthLost = onAuthLost;
    this.entries = new Map(); // key -> entry
    this.queue = new Set(); // entries waiting for a connection
    this.active = 0;
    this.activePrefetch = 0;
    this.pinned = new Set(); // object URLs on screen: never revoked
    this.stats = { loaded: 0, retried: 0, failed: 0, bytes: 0 };
  }

  /** Is this image decoded and ready? */
  ready(url) {
    const entry = this.entries.get(url);
    return Boolean(entry && entry.state === "ready");
  }

  /** The image for `url`, loaded first of all. Resolves to {objectUrl, width, height}. */
  get(url, owner) {
    if (this.entries.get(url)?.state === "error") this.entries.delete(url); // asked again: try again
    // Only the latest image an owner asked for is urgent; earlier ones become prefetches.
    for (const other of this.queue) {
      if (other.owner === owner && other.display && other.url !== url) {
        other.display = false;
        other.priority = 1000;
      }
    }
    const entry = this._entry(url, owner);
    entry.owner = owner;
    entry.priority = 0;
    entry.display = true;
    entry.lastUsed = performance.now();
    if (entry.state === "idle") this._enqueue(entry);
    this._pump();
    return entry.promise;
  }

  /** Replace `owner`'s prefetch list: [[url, priority], ...], nearest first. */
  prefetch(owner, wanted) {
    const keep = new Set(wanted.map(([url]) => url));
    for (const entry of this.queue) {
      if (entry.owner === owner && !entry.display && !keep.has(entry.url)) {
        this.queue.delete(entry);
        entry.state = "idle";
      }
    }
    for (const [url, priority] of wanted) {
      const entry = this._entry(url, owner);
      if (entry.state === "ready" || entry.state === "loading" || entry.state === "error") continue;
      entry.priority = Math.min(entry.display ? 0 : Infinity, priority);
      if (entry.state === "idle") this._enqueue(entry);
    }
    this._pump();
  }

  /** Share of `urls` already decoded (for the cache bar under a viewport). */
  readyShare(urls) {
    if (!urls.length) return 0;
    let ready = 0;
    for (const url of urls) if (this.ready(url)) ready += 1;
    return ready / urls.length;
  }

  pin(objectUrl, previous) {
    if (previous) this.pinned.delete(previous);
    if (objectUrl) this.pinned.add(objectUrl);
  }

  _entry(url, owner) {
    let entry = this.entries.get(url);
    if (!entry) {
      entry = { url, owner, state: "idle", priority: Infinity, display: false, tries: 0, lastUsed: performance.now() };
      entry.promise = new Promise((resolve, reject) => {
        entry.resolve = resolve;
        entry.reject = reject;
      });
      entry.promise.catch(() => {}); // callers that care attach their own handler
      this.entries.set(url, entry);
    }
    return entry;
  }

  _enqueue(entry) {
    entry.state = "queued";
    this.queue.add(entry);
  }

  _next(prefetchAllowed) {
    let best = null;
    for (const entry of this.queue) {
      if (!entry.display && !prefetchAllowed) continue;
      if (!best || entry.priority < best.priority) best = entry;
    }
    return best;
  }

  _pump() {
    while (this.active < this.concurrency) {
      const entry = this._next(this.activePrefetch < this.prefetchConcurrency);
      if (!entry) return;
      this.queue.delete(entry);
      this._load(entry);
    }
  }

  async _load(entry) {
    entry.state = "loading";
    const prefetch = !entry.display;
    this.active += 1;
    if (prefetch) this.activePrefetch += 1;
    let retryAfter = 0;
    try {
      await this.beforeLoad(entry.url).catch(() => {});
      const url = this.urlFor(entry.url);
      const response = await fetch(url, { credentials: "same-origin" });
      const toLogin = response.redirected && new URL(response.url).pathname.startsWith("/accounts/login");
      if (response.status === 503) {
        retryAfter = Math.max(0.5, Number(response.headers.get("Retry-After")) || 1);
      } else if (response.status === 403 && !entry.renewed) {
        entry.renewed = true; // the signed URL expired: renew the URLs and try once more
        await this.renew(entry.url);
        retryAfter = 0.01;
      } else if (response.status === 401 || response.status === 403 || toLogin) {
        this.onAuthLost();
        throw new Error("Your session has ended. Sign in again.");
      } else if (!response.ok) {
        let detail = `The server answered ${response.status}.`;
        try {
          detail = (await response.json()).detail || detail;
        } catch {
          /* not JSON */
        }
        throw new Error(detail);
      } else {
        const blob = await response.blob();
        const objectUrl = URL.createObjectURL(blob);
        const img = new Image();
        img.src = objectUrl;
        await img.decode();
        entry.state = "ready";
        entry.objectUrl = objectUrl;
        entry.image = img;
        entry.width = img.naturalWidth;
        entry.height = img.naturalHeight;
        entry.lastUsed = performance.now();
        this.stats.loaded += 1;
        this.stats.bytes += blob.size;
        entry.resolve({ objectUrl, width: entry.width, height: entry.height, url });
        this._evict();
      }
    } catch (error) {
      // A network error may be a server restart: try again a few times, then give up.
      entry.tries += 1;
      if (entry.tries <= 3 && !(error.message || "").includes("session") && error.name === "TypeError") {
        retryAfter = entry.tries;
      } else {
        entry.state = "error";
        this.stats.failed += 1;
        entry.reject(error);
      }
    } finally {
      this.active -= 1;
      if (prefetch) this.activePrefetch -= 1;
    }
    if (retryAfter) {
      entry.waited = (entry.waited || 0) + retryAfter;
      this.stats.retried += 1;
      if (entry.waited > MAX_RETRY_SECONDS) {
        entry.state = "error";
        entry.reject(new Error("The images of this series are taking unusually long to prepare."));
      } else {
        entry.state = "waiting";
        entry.retrying = true;
        setTimeout(() => {
          if (entry.state === "waiting") {
            this._enqueue(entry);
            this._pump();
          }
        }, retryAfter * 1000);
      }
    }
    this._pump();
  }

  /** Forget the least recently used images beyond the limit (never one on screen). */
  _evict() {
    const ready = [...this.entries.values()].filter((e) => e.state === "ready");
    if (ready.length <= this.maxEntries) return;
    ready.sort((a, b) => a.lastUsed - b.lastUsed);
    for (const entry of ready.slice(0, ready.length - this.maxEntries)) {
      if (this.pinned.has(entry.objectUrl)) continue;
      URL.revokeObjectURL(entry.objectUrl);
      this.entries.delete(entry.url);
    }
  }

  /** Is the image behind `url` waiting for the server to finish preparing it? */
  waiting(url) {
    const entry = this.entries.get(url);
    return Boolean(entry && entry.retrying && entry.state !== "ready");
  }
}
