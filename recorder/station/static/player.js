// One continuous player across a recording's segments, with Media Source Extensions.
//
// Markup (no inline script: the pages' CSP is script-src 'self'):
//   <video controls data-segments='["/r/R/media/000001.mp4", ...]'
//          data-mime='video/mp4; codecs="avc1.42c01e, mp4a.40.2"'
//          data-starts='[0, 30.0, ...]'   (optional: each segment's start, seconds)
//          data-duration='61.3'           (optional: the whole recording, seconds)
//          data-behind='60'               (optional: seconds kept behind the play position)
//          data-clearkey='/recordings/R/clearkey' data-play='PLAY' data-csrf='TOKEN'>
//                                         (an encrypted recording: where its key is asked for)
//   <button data-seek="42.5">marker</button>   (any element: seeks the player when clicked;
//                                               data-seek-for="VIDEO_ID" picks one of several)
//
// Each segment is a standalone fragmented MP4 (ftyp, moov, then moof+mdat fragments). Its tfdt
// (baseMediaDecodeTime) is NOT reset per file: the recorder's muxer runs decode times on across
// segments, segment 1's first video keyframe at 0 (docs/formats.md, "Decode times run on across
// segments"; read from real segments with recorder.integrity.bmff: 0, 180000, 360000 ... at
// 90 kHz for 2 s segments). So every segment already carries its place on the recording's
// timeline, and the SourceBuffer stays in "segments" mode with timestampOffset 0: a segment
// appended after a seek (out of order) still lands in its place, and the audio that starts
// later than the video (pre-event footage has no audio) or straddles a cut keeps its true time.
// "sequence" mode would instead butt each append against the previous one, shifting any segment
// appended out of order and closing real gaps, so the clock shown would no longer be the
// recording's. Re-appending each segment's own moov is allowed by MSE (an initialization segment
// with the same tracks and codecs).
//
// Memory stays bounded: at most AHEAD segments are fetched beyond the one playing, and whole
// segments that ended more than data-behind seconds (default BEHIND_S) before the play position
// are removed from the SourceBuffer, as are segments left far ahead by a seek back.
//
// An encrypted recording (ISO Common Encryption 'cenc') is appended exactly as stored, and the
// browser decrypts it with Encrypted Media Extensions and the W3C ClearKey key system: MediaKeys
// are set on the video before the MediaSource opens; the first "encrypted" event (the pssh of
// the first segment's moov; every later segment repeats it) creates the one session, whose
// licence request is POSTed with the page's play id and CSRF token to data-clearkey; the
// station answers a JSON Web Key Set with the content key, or refuses (then the player fails).
//
// State for pages and tests: video.dataset.playerState is "loading", "complete" (the last
// segment is in and the end of stream signalled) or "failed"; a failure puts its message in an element with
// role=alert right after the video (class "player-alert") and fires "bwv-player-error" on the
// video. Nothing fails silently.
(function () {
  "use strict";

  const AHEAD = 2; // segments fetched beyond the one playing
  const BEHIND_S = 60; // seconds kept behind the play position before removal (data-behind)

  function fail(video, message) {
    if (video.dataset.playerState === "failed") return;
    video.dataset.playerState = "failed";
    let alert = video.nextElementSibling;
    if (!alert || !alert.classList.contains("player-alert")) {
      alert = document.createElement("p");
      alert.className = "player-alert";
      alert.setAttribute("role", "alert");
      video.insertAdjacentElement("afterend", alert);
    }
    alert.textContent = "The recording cannot be played: " + message;
    video.dispatchEvent(new CustomEvent("bwv-player-error", { detail: message }));
  }

  function parseList(video, name) {
    const text = video.getAttribute(name);
    if (text === null) return null;
    const value = JSON.parse(text);
    if (!Array.isArray(value)) throw new Error(name + " is not a JSON list");
    return value;
  }

  class Player {
    constructor(video) {
      this.video = video;
      this.urls = parseList(video, "data-segments").map(String);
      this.mime = video.getAttribute("data-mime") || "";
      const starts = parseList(video, "data-starts");
      const duration = Number(video.getAttribute("data-duration"));
      this.duration = duration > 0 ? duration : null;
      const behind = Number(video.getAttribute("data-behind"));
      this.behind = video.hasAttribute("data-behind") && behind >= 0 ? behind : BEHIND_S;
      // each segment's [start, end) on the timeline: given, or learned as segments are appended
      // in order (then segment i starts where segment i - 1 ended)
      this.starts = this.urls.map((_, i) => (starts ? Number(starts[i]) : null));
      this.ends = this.urls.map((_, i) => (starts && i + 1 < starts.length
        ? Number(starts[i + 1]) : null));
      this.appended = this.urls.map(() => false);
      this.busy = false;
      this.fetching = null; // { index, controller } of the fetch in flight
      this.clearkey = video.getAttribute("data-clearkey");
      this.session = null; // the one ClearKey session of an encrypted recording
    }

    // the EME configuration for this.mime: each codec as a video or audio capability
    capabilities() {
      const found = /codecs="([^"]*)"/.exec(this.mime);
      const config = { initDataTypes: ["cenc"], videoCapabilities: [], audioCapabilities: [] };
      for (const codec of (found ? found[1] : "").split(",").map((c) => c.trim())) {
        if (codec.startsWith("mp4a")) {
          config.audioCapabilities.push({ contentType: 'audio/mp4; codecs="' + codec + '"' });
        } else if (codec) {
          config.videoCapabilities.push({ contentType: 'video/mp4; codecs="' + codec + '"' });
        }
      }
      return config;
    }

    async setUpKeys() {
      if (!navigator.requestMediaKeySystemAccess) {
        throw new Error("this browser has no Encrypted Media Extensions (or the page is not "
          + "a secure context)");
      }
      let access;
      try {
        access = await navigator.requestMediaKeySystemAccess("org.w3.clearkey",
          [this.capabilities()]);
      } catch (error) {
        throw new Error("this browser cannot decrypt the recording (ClearKey, cenc)");
      }
      const keys = await access.createMediaKeys();
      await this.video.setMediaKeys(keys);
      this.video.addEventListener("encrypted", (event) => {
        if (this.session !== null) return; // every segment's moov repeats the one key id
        this.session = keys.createSession("temporary");
        this.session.addEventListener("message", (message) => {
          this.licence(message.message)
            .catch((error) => fail(this.video, error.message || String(error)));
        });
        this.session.generateRequest(event.initDataType, event.initData)
          .catch((error) => fail(this.video, "no key request: " + (error.message || error)));
      });
    }

    async licence(request) {
      const body = new URLSearchParams({
        csrf: this.video.getAttribute("data-csrf") || "",
        play: this.video.getAttribute("data-play") || "",
        request: new TextDecoder().decode(request),
      });
      const response = await fetch(this.clearkey, {
        method: "POST", body, credentials: "same-origin", cache: "no-store",
      });
      if (response.status >= 500) {
        throw new Error("the station could not unwrap the recording's key (HTTP "
          + response.status + "): tell the station's administrator");
      }
      if (!response.ok) {
        throw new Error("the station refused the recording's key (HTTP " + response.status
          + "): reload the page");
      }
      await this.session.update(await response.arrayBuffer());
    }

    start() {
      const video = this.video;
      if (this.urls.length === 0) throw new Error("the recording has no segments");
      if (!("MediaSource" in window)) throw new Error("this browser has no Media Source Extensions");
      if (!MediaSource.isTypeSupported(this.mime)) {
        throw new Error("this browser cannot play " + (this.mime || "(no data-mime)"));
      }
      video.dataset.playerState = "loading";
      const ready = this.clearkey ? this.setUpKeys() : Promise.resolve();
      ready.then(() => {
        this.source = new MediaSource();
        video.src = URL.createObjectURL(this.source);
        this.source.addEventListener("sourceopen", () => this.opened(), { once: true });
      }).catch((error) => fail(video, error.message || String(error)));
      video.addEventListener("error", () => {
        const error = video.error;
        fail(video, "the browser could not decode it" + (error && error.message
          ? " (" + error.message + ")" : ""));
      });
      for (const name of ["timeupdate", "seeking"]) {
        video.addEventListener(name, () => this.pump());
      }
    }

    opened() {
      URL.revokeObjectURL(this.video.src);
      this.buffer = this.source.addSourceBuffer(this.mime);
      this.buffer.mode = "segments"; // the segments' own decode times: see the top of this file
      if (this.duration !== null) this.source.duration = this.duration;
      this.pump();
    }

    // the segment holding time t: the first whose known end lies after t, else the first
    // whose end is not known yet (the next to learn, in order)
    segmentAt(t) {
      for (let i = 0; i < this.urls.length; i++) {
        if (this.ends[i] === null || this.ends[i] > t) return i;
      }
      return this.urls.length - 1;
    }

    wanted() {
      const here = this.segmentAt(this.video.currentTime);
      const last = Math.min(this.urls.length - 1, here + AHEAD);
      for (let i = here; i <= last; i++) {
        if (!this.appended[i]) return i;
      }
      return null;
    }

    pump() {
      if (this.video.dataset.playerState === "failed" || !this.buffer) return;
      if (this.busy) {
        // a seek while a fetch is in flight: drop the fetch if it is no longer wanted
        const here = this.segmentAt(this.video.currentTime);
        const fetching = this.fetching;
        if (fetching && (fetching.index < here || fetching.index > here + AHEAD)) {
          fetching.controller.abort();
        }
        return;
      }
      this.busy = true;
      this.run().catch((error) => fail(this.video, error.message || String(error)))
        .finally(() => { this.busy = false; });
    }

    async run() {
      for (;;) {
        await this.removeBehind();
        const index = this.wanted();
        if (index === null) break;
        const data = await this.fetch(index);
        if (data === null) continue; // aborted by a seek: choose again
        await this.append(data, index);
      }
      // the last segment is in and nothing more is wanted: the end of stream lets playback
      // run to the end instead of waiting for more (appending after a seek back reopens it)
      if (this.appended[this.urls.length - 1] && this.source.readyState === "open") {
        this.source.endOfStream(); // the duration becomes the end of what was appended
        this.video.dataset.playerState = "complete";
      }
    }

    async fetch(index) {
      const controller = new AbortController();
      this.fetching = { index, controller };
      try {
        const response = await fetch(this.urls[index], {
          credentials: "same-origin", signal: controller.signal,
        });
        if (!response.ok) {
          throw new Error("segment " + (index + 1) + ": HTTP " + response.status);
        }
        return await response.arrayBuffer();
      } catch (error) {
        if (error.name === "AbortError") return null;
        throw error;
      } finally {
        this.fetching = null;
      }
    }

    // one SourceBuffer operation, finished (or failed) before the next starts
    operate(start) {
      return new Promise((resolve, reject) => {
        const buffer = this.buffer;
        const done = () => { cleanup(); resolve(); };
        const failed = () => { cleanup(); reject(new Error("the browser refused a segment")); };
        const cleanup = () => {
          buffer.removeEventListener("updateend", done);
          buffer.removeEventListener("error", failed);
        };
        buffer.addEventListener("updateend", done);
        buffer.addEventListener("error", failed);
        try {
          start(buffer);
        } catch (error) {
          cleanup();
          reject(error);
        }
      });
    }

    async append(data, index) {
      const before = this.bufferedEnd();
      try {
        await this.operate((buffer) => buffer.appendBuffer(data));
      } catch (error) {
        const name = "segment " + (index + 1);
        if (error.name === "QuotaExceededError") {
          throw new Error(name + " does not fit in the browser's memory");
        }
        throw new Error(name + " is damaged or not playable (" + error.message + ")");
      }
      this.appended[index] = true;
      if (this.starts[index] === null) {
        // the timeline starts at 0 with segment 1's first video frame (docs/formats.md); the
        // buffered ranges cannot tell that, as they start where every track has data
        this.starts[index] = index === 0 ? 0 : this.ends[index - 1];
      }
      if (this.ends[index] === null) {
        const end = this.bufferedEnd();
        if (!(end > before)) throw new Error("segment " + (index + 1) + " holds no footage");
        this.ends[index] = end;
      }
    }

    bufferedEnd() {
      const ranges = this.buffer.buffered;
      return ranges.length ? ranges.end(ranges.length - 1) : 0;
    }

    // remove whole segments that ended more than `behind` seconds before the play position, and
    // whole segments far beyond it (left there before a seek back)
    async removeBehind() {
      const t = this.video.currentTime;
      const here = this.segmentAt(t);
      for (let i = 0; i < this.urls.length; i++) {
        // never the segment of the play position, even when the play position lies past the
        // end of every segment (at the end, audio may outlast the video a little): removed, it
        // would be wanted again at once, fetched, appended and removed again, over and over
        const behind = i < here && this.ends[i] !== null && this.ends[i] < t - this.behind;
        const beyond = i > here + AHEAD;
        if (!this.appended[i] || !(behind || beyond)) continue;
        const start = this.starts[i];
        const end = this.ends[i];
        if (start === null || end === null) continue;
        // while a segment is removed, play position may move on: never remove what is playing
        await this.operate((buffer) => buffer.remove(start, end));
        this.appended[i] = false;
      }
    }
  }

  function attach(video) {
    try {
      const player = new Player(video);
      video.bwvPlayer = player;
      player.start();
    } catch (error) {
      fail(video, error.message || String(error));
    }
  }

  function seek(trigger) {
    const id = trigger.getAttribute("data-seek-for");
    const video = id ? document.getElementById(id) : document.querySelector("video[data-segments]");
    const seconds = Number(trigger.getAttribute("data-seek"));
    if (!video || !Number.isFinite(seconds)) return;
    video.currentTime = seconds;
  }

  function init() {
    document.querySelectorAll("video[data-segments]").forEach(attach);
    document.addEventListener("click", (event) => {
      const trigger = event.target.closest("[data-seek]");
      if (!trigger) return;
      event.preventDefault();
      seek(trigger);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
