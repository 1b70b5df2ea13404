// The browser side of pyodide-realtime's WebSocket backend (evaluated once per interpreter).
//
// Why JS at all: turning each message string into a Python str costs more than the whole JS reference
// spends on an event. Here each text frame is UTF-8 encoded straight into a Python-owned bytearray
// (TextEncoder.encodeInto) and Python is called with the byte count only. No protocol logic here.
(() => {
  const encoder = new TextEncoder();

  // Browsers only let a page close with 1000 or 3000-4999, so a message over the bound closes with
  // 4009 ("1009, message too big", in the application range); Python reports it as 1009.
  const TOO_BIG_CLOSE_CODE = 4009;
  // encodeInto stops before a character that does not fit (at most 4 bytes): with this much room past
  // the bound, an unfinished encoding proves the message is over it.
  const UTF8_SLACK = 4;

  // callbacks: {message(n), grow(minBytes) -> new bytearray proxy, binary(size), tooBig(atLeast),
  //             open(protocol), error(), close(code, reason)} — PyProxies owned by Python; this side
  //             only drops its references and lets Python destroy them.
  // maxBytes: the bound on a message's UTF-8 size (0: none), checked before a byte reaches Python.
  return function openRealtimeSocket(url, protocols, buffer, callbacks, maxBytes) {
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
    let refused = false;  // a message over the bound ends the connection: later ones are not read
    const refuse = (atLeast) => {
      refused = true;
      ws.close(TOO_BIG_CLOSE_CODE, "message too big");
      callbacks.tooBig(atLeast);
    };
    ws.onmessage = (event) => {
      if (refused) return;
      const data = event.data;
      if (typeof data !== "string") {
        const size = data.byteLength ?? data.size ?? 0;
        if (maxBytes && size > maxBytes) refuse(size);
        else callbacks.binary(size);
        return;
      }
      // Every UTF-16 code unit is at least one UTF-8 byte: a longer string is over the bound as it is.
      if (maxBytes && data.length > maxBytes) return refuse(data.length);
      if (view.byteLength === 0) refreshView();
      let result = encoder.encodeInto(data, view);
      if (result.read < data.length) {
        // UTF-8 needs at most 3 bytes per UTF-16 code unit; never more room than the bound needs.
        const need = data.length * 3;
        grow(maxBytes ? Math.min(need, maxBytes + UTF8_SLACK) : need);
        result = encoder.encodeInto(data, view);
        if (result.read < data.length) return refuse(maxBytes + 1);
      }
      if (maxBytes && result.written > maxBytes) return refuse(result.written);
      callbacks.message(result.written);
    };
    ws.onerror = () => callbacks.error();
    ws.onclose = (event) => {
      detach();
      callbacks.close(event.code, event.reason);
    };

    return {
      send: (text) => ws.send(text),
      bufferedAmount: () => ws.bufferedAmount,
      close: (code, reason) => {
        if (ws.readyState === WebSocket.CLOSING || ws.readyState === WebSocket.CLOSED) return;
        ws.close(code, reason);
      },
    };
  };
})()
