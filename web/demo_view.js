// The demo's painter: the page's Python (demo_app.py, on this page or in a worker) sends what changed
// in one paint per frame at most. From a worker every DOM access is a synchronous round trip to this
// page, so the Python side never touches the DOM bit by bit: on the page it calls demoView.paint(json);
// a worker calls demoView.listen(name) once, then posts each paint's JSON on that BroadcastChannel, and
// demoView.forward(json) once: the page's clicks go back to it on the channel, as "id type" strings (a
// listener added from the worker costs dozens of synchronous calls per event, to read the event).
//   bubbles: [[itemId, role, who]]  a transcript bubble, made if missing
//   order:   [itemId] | null         the transcript's bubbles in this order; the others go
//   sets:    [[target, kind, name, value]]  target "id" or "id .class"; kind text|prop|attr|data|style|class
//   scroll:  true                     the transcript follows its last bubble
window.demoView = {
  listen(name) {
    const channel = new BroadcastChannel(name);
    channel.onmessage = (e) => window.demoView.paint(e.data);  // in the order posted
    window.demoView.channel = channel;
    return true;
  },
  forward(json) {  // [[id, type]]: the events the worker acts on
    const channel = window.demoView.channel;
    for (const [id, type] of JSON.parse(json)) {
      document.getElementById(id).addEventListener(type, (e) => { e.preventDefault(); channel.postMessage(`${id} ${type}`); });
    }
    return true;
  },
  value(id, set) {  // a form field's value (null: no such field), set first if `set` is a string
    const node = document.getElementById(id);
    if (!node) return null;
    if (typeof set === "string") node.value = set;
    return node.value;
  },
  paint(json) {
    const { bubbles, order, sets, scroll } = JSON.parse(json);
    const list = document.getElementById("transcript");
    for (const [itemId, role, who] of bubbles) {
      if (document.getElementById(`item-${itemId}`)) continue;
      const li = document.createElement("li");
      li.id = `item-${itemId}`;
      li.className = `turn ${role}`;
      li.innerHTML = '<span class="who"></span><span class="text"></span> <span class="unheard"></span>';
      li.firstChild.textContent = who;
      list.append(li);
    }
    if (order) {
      const wanted = new Set(order.map((id) => `item-${id}`));
      for (const li of [...list.children]) if (!wanted.has(li.id)) li.remove();
      for (const id of order) {
        const li = document.getElementById(`item-${id}`);
        if (li) list.append(li);  // appending in order leaves them in order
      }
    }
    for (const [target, kind, name, value] of sets) {
      const [id, part] = target.split(" ");
      let node = document.getElementById(id);
      if (node && part) node = node.querySelector(part);
      if (!node) continue;
      if (kind === "text") node.textContent = value;
      else if (kind === "prop") node[name] = value;
      else if (kind === "attr") node.setAttribute(name, value);
      else if (kind === "data") value === null ? delete node.dataset[name] : (node.dataset[name] = value);
      else if (kind === "style") node.style.setProperty(name, value);
      else if (kind === "class") node.classList.toggle(name, Boolean(value));
    }
    if (scroll) list.scrollTop = list.scrollHeight;
  },
};
