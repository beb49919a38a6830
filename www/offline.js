// Offline use of a dist/ build: registers the service worker (www/sw.js), which precaches this
// build, and offers a reload when the site has a newer build. A page served from www/ (development)
// has no build <meta> and registers nothing, so it never runs from a stale cache.
import { $ } from './dom.js';

export function offline() {
  const build = document.querySelector('meta[name="build"]')?.content;
  if (!build || !('serviceWorker' in navigator)) return;
  const banner = $('update-banner');
  let reloading = false;

  const offer = (worker) => {
    banner.hidden = false;
    $('update-reload').onclick = () => {
      reloading = true;
      worker.postMessage('skip-waiting');
    };
  };
  const hadController = Boolean(navigator.serviceWorker.controller);
  navigator.serviceWorker.addEventListener('controllerchange', () => {
    if (reloading) location.reload();
    // Another tab took the update: this page's files may be gone from the cache, so offer a reload.
    else if (hadController) offer({ postMessage() { location.reload(); } });
  });

  // The worker sits at the site's root, beside index.html; this module is in the build's folder.
  navigator.serviceWorker.register(new URL('../sw.js', import.meta.url), { updateViaCache: 'none' }).then((reg) => {
    const watch = (worker) => {
      worker.addEventListener('statechange', () => {
        // Installed while another version controls the page: a new build is waiting.
        if (worker.state === 'installed' && navigator.serviceWorker.controller) offer(worker);
      });
    };
    if (reg.waiting && navigator.serviceWorker.controller) offer(reg.waiting);
    if (reg.installing) watch(reg.installing);
    reg.addEventListener('updatefound', () => watch(reg.installing));
  }).catch(() => { /* no offline copy: the page works online as before */ });
  navigator.serviceWorker.ready.then(() => { document.documentElement.dataset.offline = build; });
}
