// The browser side of pyodide-realtime's WebRTC backend (evaluated once per interpreter).
//
// One RTCPeerConnection per connect: the microphone as a track, the model's voice as the remote track
// (played by an <audio> element), the Realtime events on the "oai-events" data channel, the offer
// posted to the API's WebRTC endpoint. No protocol logic here: Python decides, this only wires the
// browser's objects and reports what happened, in plain values (names and messages, never objects).
(() => {
  // A peer connection that reports "disconnected" may come back (a network blip): it is given up only
  // after this long, as the JS Agents SDK does. "failed" ends it at once.
  const DISCONNECTED_GRACE_MS = 5000;

  // options: {url, headers, constraints, microphone, mediaStream, audioElement, muted}
  // callbacks: {open(), message(text), binary(size), error(kind, name, message, status),
  //             close(why)} - PyProxies owned by Python; none is called once close() ran here.
  return function openRealtimePeer(options, callbacks) {
    let finished = false;  // close() ran, or a close/error was reported: nothing more is reported
    const report = (name, ...args) => {
      if (!finished) callbacks[name](...args);
    };
    const end = (name, ...args) => {
      if (finished) return;
      cleanUp();
      callbacks[name](...args);
      finished = true;
    };

    const pc = new RTCPeerConnection({ iceServers: [] });  // throws where WebRTC is missing
    const channel = pc.createDataChannel("oai-events");
    const abort = new AbortController();
    const audio = options.audioElement || document.createElement("audio");
    audio.autoplay = true;
    let ownTracks = [];  // tracks this connection opened (a given mediaStream stays the app's)
    let sender = null;
    let graceTimer = null;
    let callId = null;
    let opened = false;
    let muted = Boolean(options.muted);  // mute() may come while the microphone is being opened

    const cleanUp = () => {
      finished = true;
      if (graceTimer !== null) clearTimeout(graceTimer);
      abort.abort();
      channel.onopen = channel.onmessage = channel.onclose = channel.onerror = null;
      pc.onconnectionstatechange = pc.ontrack = null;
      try { channel.close(); } catch (e) { /* closing already */ }
      for (const track of ownTracks) track.stop();
      ownTracks = [];
      pc.close();
      if (!options.audioElement || audio.srcObject) audio.srcObject = null;
    };

    pc.ontrack = (event) => {
      audio.srcObject = event.streams && event.streams[0] ? event.streams[0] : new MediaStream([event.track]);
      const played = audio.play();
      if (played && played.catch) played.catch(() => {});  // autoplay refused: the page's click resumes it
    };
    channel.onopen = () => {
      opened = true;
      report("open");
    };
    channel.onmessage = (event) => {
      if (typeof event.data === "string") report("message", event.data);
      else report("binary", event.data.byteLength ?? event.data.size ?? 0);
    };
    channel.onerror = (event) => {
      const error = event && event.error;
      end("error", "datachannel", (error && error.name) || "Error", (error && error.message) || "", 0);
    };
    channel.onclose = () => end("close", opened ? "the data channel closed" : "the data channel closed before it opened");
    pc.onconnectionstatechange = () => {
      const state = pc.connectionState;
      if (state === "connected" && graceTimer !== null) {
        clearTimeout(graceTimer);
        graceTimer = null;
      } else if (state === "failed") {
        end("close", "ICE failed: no network path to the peer works any more");
      } else if (state === "disconnected" && graceTimer === null) {
        graceTimer = setTimeout(() => {
          if (pc.connectionState === "disconnected") end("close", "the peer stopped answering (ICE disconnected)");
        }, DISCONNECTED_GRACE_MS);
      }
    };

    const fail = (kind, error, status = 0) => {
      end("error", kind, (error && error.name) || "Error", (error && error.message) || String(error || ""), status);
    };

    (async () => {
      let stream = options.mediaStream || null;
      if (!stream && options.microphone) {
        if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
          const err = new Error("navigator.mediaDevices.getUserMedia is missing (an insecure http:// page?)");
          err.name = "InsecureContextError";
          throw Object.assign(err, { kind: "media" });
        }
        try {
          stream = await navigator.mediaDevices.getUserMedia({ audio: options.constraints, video: false });
        } catch (e) {
          throw Object.assign(new Error(e && e.message ? e.message : String(e)), { name: (e && e.name) || "Error", kind: "media" });
        }
        if (finished) {  // closed while the permission prompt was open
          for (const track of stream.getTracks()) track.stop();
          return;
        }
        ownTracks = stream.getTracks();
      }
      const track = stream ? stream.getAudioTracks()[0] : null;
      if (track) {
        track.enabled = !muted;
        sender = pc.addTrack(track, stream);
      } else {
        pc.addTransceiver("audio", { direction: "recvonly" });  // no microphone: listen only
      }
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      if (finished) return;
      const headers = Object.assign({}, options.headers, { "Content-Type": "application/sdp" });
      let response;
      try {
        response = await fetch(options.url, { method: "POST", body: offer.sdp, headers, signal: abort.signal });
      } catch (e) {
        throw Object.assign(new Error(e && e.message ? e.message : String(e)), { name: (e && e.name) || "Error", kind: "fetch" });
      }
      if (finished) return;
      const text = await response.text();
      if (finished) return;
      if (!response.ok) {
        throw Object.assign(new Error(text), { name: response.statusText || "HTTPError", kind: "http", status: response.status });
      }
      const location = response.headers.get("Location");
      callId = location ? location.split("/").pop() : null;
      try {
        await pc.setRemoteDescription({ type: "answer", sdp: text });
      } catch (e) {
        throw Object.assign(new Error(e && e.message ? e.message : String(e)), { name: (e && e.name) || "Error", kind: "sdp" });
      }
    })().catch((e) => fail((e && e.kind) || "offer", e, (e && e.status) || 0));

    return {
      send: (text) => channel.send(text),
      bufferedAmount: () => channel.bufferedAmount,
      setMuted: (value) => {
        muted = Boolean(value);
        if (sender && sender.track) sender.track.enabled = !muted;
      },
      trackEnabled: () => (sender && sender.track ? sender.track.enabled : null),
      callId: () => callId,
      // Bytes sent so far: the microphone's RTP payload and the data channel's messages (getStats).
      bytesSent: async () => {
        const sent = { audio: 0, events: 0 };
        (await pc.getStats()).forEach((report) => {
          if (report.type === "outbound-rtp" && report.kind === "audio") sent.audio += report.bytesSent || 0;
          if (report.type === "data-channel") sent.events += report.bytesSent || 0;
        });
        return [sent.audio, sent.events];
      },
      close: () => {
        if (!finished) cleanUp();
      },
    };
  };
})()
