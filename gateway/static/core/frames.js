// @ts-check
// frames.js — the registry from a server frame's `type` to the handlers features registered for
// it. Several features may handle one type (a `message` updates the room list, the open room and
// notifications); handlers run in registration order, which is the features' order in app.js.

/** @typedef {import('./types.js').Frame} Frame */

/** @type {Map<string, Array<(f: Frame) => void>>} */
const handlers = new Map();

/**
 * Calls `handler` for every frame of `type`.
 * @param {string} type
 * @param {(f: Frame) => void} handler
 */
export function onFrame(type, handler) {
  if (!handlers.has(type)) handlers.set(type, []);
  handlers.get(type)?.push(handler);
}

/**
 * Hands `f` to the handlers of its type (frames nobody handles are ignored).
 * @param {Frame} f
 */
export function dispatch(f) {
  for (const h of handlers.get(f.type) ?? []) h(f);
}
