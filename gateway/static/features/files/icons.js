// @ts-check
// icons.js — the few line icons the files feature draws (SVG made element by element: no markup
// parsed, and no emoji font needed).

const NS = 'http://www.w3.org/2000/svg';

/** Each icon's path data on a 24×24 grid; `fill` ones are solid, the others stroked. */
const ICONS = {
  file: { d: ['M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8z', 'M14 2v6h6'] },
  text: { d: ['M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8z', 'M14 2v6h6', 'M8 13h8', 'M8 17h6'] },
  image: { d: ['M5 3h14a2 2 0 0 1 2 2v14a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z', 'M8.5 10.5a1.5 1.5 0 1 0 0-3 1.5 1.5 0 0 0 0 3z', 'M21 15l-5-5L5 21'] },
  mic: { d: ['M12 2a3 3 0 0 0-3 3v7a3 3 0 0 0 6 0V5a3 3 0 0 0-3-3z', 'M19 10v2a7 7 0 0 1-14 0v-2', 'M12 19v3'] },
  download: { d: ['M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4', 'M7 10l5 5 5-5', 'M12 15V3'] },
  play: { d: ['M7 4.5v15l12.5-7.5z'], fill: true },
  pause: { d: ['M6.5 4h4v16h-4z', 'M13.5 4h4v16h-4z'], fill: true },
};

/** @typedef {keyof typeof ICONS} IconName */

/**
 * The icon `name`, `size` CSS pixels square, hidden from screen readers (its button says what it does).
 * @param {IconName} name
 * @param {number} [size]
 */
export function icon(name, size = 20) {
  const { d, fill } = /** @type {{d: string[], fill?: boolean}} */ (ICONS[name]);
  const svg = document.createElementNS(NS, 'svg');
  for (const [k, v] of Object.entries({ viewBox: '0 0 24 24', width: String(size), height: String(size), 'aria-hidden': 'true',
    fill: fill ? 'currentColor' : 'none', stroke: fill ? 'none' : 'currentColor', 'stroke-width': '2', 'stroke-linecap': 'round', 'stroke-linejoin': 'round' })) {
    svg.setAttribute(k, v);
  }
  svg.classList.add('ico', `ico-${name}`);
  for (const path of d) {
    const p = document.createElementNS(NS, 'path');
    p.setAttribute('d', path);
    svg.append(p);
  }
  return svg;
}
