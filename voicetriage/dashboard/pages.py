"""The dashboard's two HTML pages: the live view and the login form.

Both are static markup; the data comes from ``/dashboard/state`` and
``/dashboard/ws`` through the ES modules in ``static/`` (no inline script, so
the Content-Security-Policy can forbid it).
"""

from __future__ import annotations

import html

_HEAD = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/static/dashboard.css">
<script type="module" src="/dashboard/static/{module}"></script>
</head>
"""


def login(message: str | None = None) -> str:
    """The form an anonymous visitor gets (with HTTP 401): the token goes to ``/login``."""
    note = f'<p class="problem" role="alert">{html.escape(message)}</p>' if message else ""
    return _HEAD.format(title="voicetriage: sign in", module="login.js") + f"""<body>
<main class="login">
<h1>voicetriage supervisor view</h1>
<p>Sign in with an API token (scope <code>events</code>, <code>hints</code> or <code>no_transcripts</code>).</p>
{note}
<form id="login" novalidate>
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required minlength="16">
<button type="submit">Sign in</button>
<p id="login-status" role="status" aria-live="polite"></p>
</form>
</main>
</body>
</html>
"""


def page(user: str | None = None) -> str:
    """The live view: calls table, ended calls, queue filter and the call page."""
    who = f'<span class="who">signed in as {html.escape(user)}</span>' if user else ""
    return _HEAD.format(title="voicetriage: live calls", module="app.js") + f"""<body>
<header class="top">
<h1><a href="/dashboard">voicetriage live calls</a></h1>
<p id="conn" class="conn" role="status" aria-live="polite" data-state="connecting">connecting…</p>
{who}
</header>
<main>
<section id="overview" aria-labelledby="calls-h">
<div class="bar">
<h2 id="calls-h">Active calls <span id="active-count" class="count">0</span></h2>
<label for="queue-filter">Queue</label>
<select id="queue-filter"><option value="">all queues</option></select>
<ul id="queue-counts" class="counts" aria-label="calls per queue"></ul>
</div>
<div class="scroll">
<table id="active" class="calls">
<caption class="sr-only">Calls in progress, one row each; the call id opens the call page</caption>
<thead><tr>
<th scope="col">Call</th><th scope="col">Caller</th><th scope="col">Platform</th>
<th scope="col">Duration</th><th scope="col">Language / dialect</th><th scope="col">Speaking rate</th>
<th scope="col">Age band</th><th scope="col">Distress</th><th scope="col">Hint queue</th>
<th scope="col">Rules fired</th>
</tr></thead>
<tbody></tbody>
</table>
</div>
<p id="no-active" class="empty">No call in progress.</p>
<div id="announce" class="sr-only" aria-live="polite"></div>
<h2 id="ended-h">Ended calls <span class="note">(the last 50)</span></h2>
<div class="scroll">
<table id="ended" class="calls">
<caption class="sr-only">Calls that ended, newest first, with their outcome</caption>
<thead><tr>
<th scope="col">Call</th><th scope="col">Caller</th><th scope="col">Platform</th>
<th scope="col">Duration</th><th scope="col">Outcome</th><th scope="col">Rules fired</th>
<th scope="col">Ended</th><th scope="col">Why</th>
</tr></thead>
<tbody></tbody>
</table>
</div>
</section>
<section id="call" hidden aria-labelledby="call-h">
<p><a href="/dashboard" id="back">← all calls</a></p>
<h2 id="call-h">Call <span id="call-id"></span></h2>
<dl id="call-facts" class="facts"></dl>
<div class="columns">
<section aria-labelledby="tr-h" class="panel">
<h3 id="tr-h">Transcript</h3>
<p class="legend"><span class="partial">grey: in progress</span> · <span class="final">black: final</span></p>
<ol id="transcript" class="transcript"></ol>
</section>
<section aria-labelledby="hints-h" class="panel">
<h3 id="hints-h">Hints</h3>
<ol id="hints" class="hints" aria-live="polite" aria-relevant="additions"></ol>
</section>
</div>
<section aria-labelledby="tl-h" class="panel">
<h3 id="tl-h">Signals over call time</h3>
<div id="timeline" class="timeline"></div>
</section>
</section>
</main>
</body>
</html>
"""


__all__ = ["login", "page"]
