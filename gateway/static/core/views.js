// @ts-check
// views.js — a feature's markup lives in its own `view.html`, as `<template data-slot="NAME">`
// elements. Mounting puts each template's content before the placeholder `[data-slot="NAME"]`
// (in index.html or in a view mounted earlier), so several features can add to one slot and the
// page keeps their order. Templates are our own static files, parsed inert: no script runs.

/**
 * Fetches `url` and returns its templates.
 * @param {URL} url
 * @returns {Promise<HTMLTemplateElement[]>}
 */
export async function loadViews(url) {
  const res = await fetch(url, { credentials: 'same-origin' });
  if (!res.ok) throw new Error(`${url.pathname}: ${res.status}`);
  const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
  return [...doc.querySelectorAll('template')];
}

/**
 * Mounts each template at its slot.
 * @param {HTMLTemplateElement[]} templates
 */
export function mountViews(templates) {
  for (const t of templates) {
    const slot = document.querySelector(`[data-slot="${t.dataset.slot}"]`);
    if (!slot) throw new Error(`no slot "${t.dataset.slot}" for a template`);
    slot.before(document.importNode(t.content, true));
  }
}
