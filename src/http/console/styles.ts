/** The console's one stylesheet, served at /console/assets/console.css (no build step, no inline styles, so the CSP can forbid them). */
export const CONSOLE_CSS = `
:root { --fg: #1d2330; --muted: #5d6678; --line: #dde1e8; --bg: #f6f7f9; --card: #fff; --accent: #2f5bd3;
  --ok: #1e7b45; --warn: #a35b00; --bad: #b3261e; --info: #3b5bab; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header.top { display: flex; align-items: center; gap: 18px; padding: 10px 24px; background: #1d2330; color: #fff; }
header.top .brand { font-weight: 700; letter-spacing: .02em; }
header.top nav a { color: #cfd6e6; text-decoration: none; margin-right: 14px; }
header.top nav a.current, header.top nav a:hover { color: #fff; text-decoration: underline; }
header.top .who { margin-left: auto; display: flex; gap: 10px; align-items: center; color: #cfd6e6; }
header.top form { margin: 0; }
main { max-width: 1280px; margin: 0 auto; padding: 20px 24px 48px; }
h1 { font-size: 20px; margin: 4px 0 16px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 14px 16px; margin-bottom: 14px; }
table { border-collapse: collapse; width: 100%; background: var(--card); }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; word-break: break-all; }
.muted { color: var(--muted); }
.time { white-space: nowrap; word-break: normal; }
td .actions { margin: 0; flex-direction: column; align-items: stretch; }
.error-text { color: var(--bad); font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; white-space: pre-wrap; word-break: break-word; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; background: #e8ebf1; color: var(--fg); }
.badge.ok, .badge.completed, .badge.success, .badge.closed { background: #dcf1e4; color: var(--ok); }
.badge.warn, .badge.retrying, .badge.retryable_error, .badge.rate_limited, .badge.half_open, .badge.held { background: #fbecd6; color: var(--warn); }
.badge.bad, .badge.dead_lettered, .badge.terminal_error, .badge.open, .badge.circuit_open, .badge.expired { background: #f8dcda; color: var(--bad); }
.badge.info, .badge.active, .badge.waiting, .badge.scheduled { background: #e0e7f8; color: var(--info); }
form.inline { display: inline; margin: 0; }
form.filters { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-end; }
label { display: flex; flex-direction: column; gap: 3px; font-size: 12px; color: var(--muted); }
input, select { font: inherit; padding: 5px 8px; border: 1px solid #b9c0cc; border-radius: 4px; background: #fff; color: var(--fg); }
input[type=text], input[type=password], input[type=search] { min-width: 220px; }
button { font: inherit; padding: 5px 12px; border-radius: 4px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: var(--accent); }
button.danger { background: var(--bad); border-color: var(--bad); }
button.link { background: none; border: none; color: #cfd6e6; padding: 0; text-decoration: underline; }
.actions { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; margin: 10px 0; }
.notice { border-left: 4px solid var(--info); background: #eef2fb; padding: 10px 14px; margin: 12px 0; }
.notice.bad { border-color: var(--bad); background: #fbeeed; }
.notice.warn { border-color: var(--warn); background: #fdf4e7; }
.notice.ok { border-color: var(--ok); background: #e9f6ee; }
.task-head { display: flex; gap: 12px; align-items: baseline; flex-wrap: wrap; }
.task-head h2 { margin: 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 8px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
details pre { max-width: 420px; max-height: 320px; overflow: auto; background: var(--bg); padding: 6px; white-space: pre-wrap; }
.login { max-width: 420px; margin: 60px auto; }
.login form { display: flex; flex-direction: column; gap: 12px; }
`;
