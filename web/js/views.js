// The page's views by route name (/web/<name>/<args>), filled by the view
// modules, read by app.js.
export const views = {};
export function register(name, render) { views[name] = render; }
