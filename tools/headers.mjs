// The HTTP headers the page is served with, in one place: tools/serve.mjs sends them, and
// tools/dist.mjs writes them to dist/_headers (for static hosts that read one) and the policy to
// a <meta> in index.html (for hosts that set no headers, GitHub Pages among them).

/**
 * Content-Security-Policy. Scripts only from the page's origin, plus compiling WebAssembly; no
 * inline scripts or styles in markup (the charts style their elements through the CSSOM, which a
 * policy does not restrict). `connect-src` lets a user load a model from any http(s) address.
 */
const CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self' https: http:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
];

/** `frame-ancestors` works only as a header (a <meta> policy ignores it): any site may embed the page. */
export const CSP_HEADER = [...CSP, 'frame-ancestors *'].join('; ');
export const CSP_META = CSP.join('; ');

/**
 * Cross-origin isolation (COOP/COEP): lets the page measure its memory precisely
 * (performance.measureUserAgentSpecificMemory) and would allow wasm threads.
 */
export const SECURITY_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Content-Security-Policy': CSP_HEADER,
  'X-Content-Type-Options': 'nosniff',
};
