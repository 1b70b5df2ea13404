// The browser side of pyodide-realtime's WebSocket backend (evaluated once per interpreter).
//
// Why JS at all: turning each message string into a Python str costs more than the whole JS reference
// spends on an event. Here each text frame is UTF-8 encoded straight into a Python-owned bytearray
// (TextEncoder.encodeInto) and Python is called with the byte count only. No protocol logic here.
(() => {
  const encoder = new TextEncoder();

  // callbacks: {message(n), grow(minBytes) -> new bytearray proxy, binary(size), open(protocol),
  //             error(), close(code, reason)} — PyProxies owned by Python; this side only drops its
  //             references and lets Python destroy them.
  return function openRealtimeSocket(url, protocols, buffer, callbacks) {
    let pyBuffer = buffer.getBuffer("u8");
    let view = pyBuffer.data;

    const refreshView = () => {
      // A grown wasm memory detaches the old view (its length becomes 0): fetch a fresh one.
      pyBuffer.release();
      pyBuffer = buffer.getBuffer("u8");
      view = pyBuffer.data;
    };
    const grow = (minBytes) => {
      pyBuffer.release();
      buffer = callbacks.grow(minBytes);
      pyBuffer = buffer.getBuffer("u8");
      view = pyBuffer.data;
    };

    const ws = new WebSocket(url, protocols);  // throws SyntaxError on a bad URL or protocol token
    ws.binaryType = "arraybuffer";

    const detach = () => {
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      if (pyBuffer !== null) {
        pyBuffer.release();
        pyBuffer = null;
      }
    };

    ws.onopen = () => callbacks.open(ws.protocol);
    ws.onmessage = (event) => {
      const data = event.data;
      if (typeof data !== "string") {
        callbacks.binary(data.byteLength ?? data.size ?? 0);
        return;
      }
      if (view.byteLength === 0) refreshView();
      let result = encoder.encodeInto(data, view);
      if (result.read < data.length) {
        grow(data.length * 3);  // UTF-8 needs at most 3 bytes per UTF-16 code unit
        result = encoder.encodeInto(data, view);
      }
      callbacks.message(result.written);
    };
    ws.onerror = () => callbacks.error();
    ws.onclose = (event) => {
      detach();
      callbacks.close(event.code, event.reason);
    };

    return {
      send: (text) => ws.send(text),
      close: (code, reason) => {
        if (ws.readyState === WebSocket.CLOSING || ws.readyState === WebSocket.CLOSED) return;
        ws.close(code, reason);
      },
    };
  };
})()
