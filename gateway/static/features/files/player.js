// @ts-check
// player.js — a voice note or audio file played inline: a play/pause button, a position slider
// (arrow keys seek) and "0:03 / 0:07". The length comes from the attachment's `duration_ms`
// (a recorded WebM often does not say its own), else from the audio once it knows. One plays at
// a time. The audio loads only when played (`preload="none"`), or only its head when its length
// is not known otherwise; an expired URL is renewed first.

import { el } from '../../core/dom.js';
import { clock, duration } from './format.js';
import { icon } from './icons.js';

/** @typedef {import('../../core/types.js').Attachment} Attachment */

/** The player playing now. @type {HTMLAudioElement | null} */
let playing = null;

/**
 * A player for `a`; `src()` gives a URL valid now, `renew()` a fresh one after a load error.
 * @param {Attachment} a
 * @param {{src: () => Promise<string>, renew: () => Promise<string>}} urls
 */
export function audioPlayer(a, urls) {
  const voice = a.kind === 'voice';
  const box = el('div', voice ? 'player voice' : 'player');
  box.setAttribute('role', 'group');
  const audio = /** @type {HTMLAudioElement} */ (el('audio'));
  audio.preload = 'none';
  const total = a.duration_ms && a.duration_ms > 0 ? a.duration_ms : 0;
  const what = voice ? 'voice note' : a.name;
  box.setAttribute('aria-label', total ? `${voice ? 'Voice note' : a.name}, ${duration(total)}` : (voice ? 'Voice note' : a.name));

  const btn = /** @type {HTMLButtonElement} */ (el('button', 'play'));
  btn.append(icon('play', 18));
  btn.type = 'button';
  btn.setAttribute('aria-label', `Play the ${what}`);
  const seek = /** @type {HTMLInputElement} */ (el('input', 'seek'));
  seek.type = 'range';
  seek.min = '0';
  seek.step = '0.1';
  seek.value = '0';
  seek.setAttribute('aria-label', `Position in the ${what}`);
  const time = el('span', 'play-time');
  time.setAttribute('aria-hidden', 'true');

  const lengthMs = () => total || (Number.isFinite(audio.duration) ? audio.duration * 1000 : 0);
  const render = () => {
    const at = audio.currentTime * 1000, len = lengthMs();
    seek.max = String(len / 1000 || 1);
    seek.value = String(audio.currentTime);
    seek.setAttribute('aria-valuetext', `${duration(at)} of ${len ? duration(len) : 'unknown length'}`);
    time.textContent = `${clock(at)} / ${len ? clock(len) : '–:––'}`;
  };
  render();

  let loaded = false, renewed = false, wantPlay = false;
  const start = async () => {
    wantPlay = true;
    if (!loaded) {
      loaded = true;
      try { audio.src = await urls.src(); } catch { loaded = false; return; }
    }
    if (playing && playing !== audio) playing.pause();
    playing = audio;
    await audio.play().catch(() => { /* an error event follows, or the user paused */ });
  };
  btn.addEventListener('click', () => { if (audio.paused) start(); else { wantPlay = false; audio.pause(); } });
  seek.addEventListener('input', () => {
    if (!loaded) { loaded = true; urls.src().then((u) => { audio.src = u; audio.currentTime = Number(seek.value); }, () => { loaded = false; }); return; }
    audio.currentTime = Number(seek.value);
  });
  audio.addEventListener('play', () => { btn.replaceChildren(icon('pause', 18)); btn.setAttribute('aria-label', `Pause the ${what}`); box.classList.add('playing'); });
  audio.addEventListener('pause', () => { btn.replaceChildren(icon('play', 18)); btn.setAttribute('aria-label', `Play the ${what}`); box.classList.remove('playing'); });
  audio.addEventListener('ended', () => { wantPlay = false; box.classList.add('played'); });
  audio.addEventListener('timeupdate', render);
  audio.addEventListener('durationchange', () => {
    if (!total && Number.isFinite(audio.duration)) box.setAttribute('aria-label', `${voice ? 'Voice note' : a.name}, ${duration(audio.duration * 1000)}`);
    render();
  });
  audio.addEventListener('error', async () => {
    if (renewed || !loaded) return; // a second failure: the file is gone, the button does nothing more
    renewed = true;
    const at = audio.currentTime;
    try { audio.src = await urls.renew(); } catch { return; }
    audio.currentTime = at;
    if (wantPlay) audio.play().catch(() => {});
  });
  box.append(btn, seek, time, audio);
  if (!total) { // a length only the file knows: read its head now to show it
    loaded = true;
    audio.preload = 'metadata';
    urls.src().then((u) => { audio.src = u; }, () => { loaded = false; });
  }
  return box;
}
