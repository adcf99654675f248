"""Real servers on 127.0.0.1 for tests: feeds over HTTP, a Slack Web API stand-in, SMTP.

Each server binds port 0 (the OS picks a free port), runs in a background thread, and is
a context manager::

    with FeedServer() as feeds, SlackStandIn() as slack, SmtpServer() as smtp:
        feeds.set_route("/news.xml", Response(body=b"<rss .../>"))
        ...

They record everything they receive so a test can assert on what really went over the
wire. Nothing here talks to anything but loopback.
"""

from __future__ import annotations

from tests.support.feed_server import FeedServer, Request, Response
from tests.support.slack_standin import SlackCall, SlackStandIn
from tests.support.smtp_server import ReceivedMail, SmtpServer

__all__ = [
    "FeedServer",
    "ReceivedMail",
    "Request",
    "Response",
    "SlackCall",
    "SlackStandIn",
    "SmtpServer",
]
