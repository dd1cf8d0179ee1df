"""The weekly report as one self-contained HTML page, and the same figures as CSV. Rules
only, no I/O: the figures come in a WeeklyReport."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, timedelta
from html import escape

from services.analytics.reports.charts import bar_chart, line_chart


@dataclass
class WeeklyReport:
    community_id: str
    week_start: date
    members: int = 0  # at the end of the week
    joined: int = 0
    left: int = 0
    active: int = 0  # members active at least once in the week
    daily_active: list[int] = field(default_factory=list)  # Monday to Sunday
    daily_contributions: list[int] = field(default_factory=list)  # posts, comments, reactions
    posts: int = 0
    comments: int = 0
    reactions: int = 0
    checkins: int = 0
    # The last eight weeks, oldest first: (Monday, value).
    weekly_active: list[tuple[date, int]] = field(default_factory=list)
    satisfaction: list[tuple[date, float]] = field(default_factory=list)
    at_risk: int = 0
    top: list[tuple[str, int]] = field(default_factory=list)  # (user, contributions)

    @property
    def days(self) -> list[date]:
        return [self.week_start + timedelta(days=n) for n in range(7)]

    def rows(self) -> list[tuple[str, str, str]]:
        """(section, label, value): the CSV, and what the page's tables show."""
        rows = [
            ("week", "week_start", self.week_start.isoformat()),
            ("week", "members", str(self.members)),
            ("week", "joined", str(self.joined)),
            ("week", "left", str(self.left)),
            ("week", "active_members", str(self.active)),
            ("week", "posts", str(self.posts)),
            ("week", "comments", str(self.comments)),
            ("week", "reactions", str(self.reactions)),
            ("week", "checkins", str(self.checkins)),
            ("week", "members_at_churn_risk", str(self.at_risk)),
        ]
        for day, dau, made in zip(
            self.days, self.daily_active, self.daily_contributions, strict=True
        ):
            rows.append(("daily_active", day.isoformat(), str(dau)))
            rows.append(("daily_contributions", day.isoformat(), str(made)))
        rows += [("weekly_active", start.isoformat(), str(n)) for start, n in self.weekly_active]
        rows += [("satisfaction", start.isoformat(), f"{s:g}") for start, s in self.satisfaction]
        rows += [("top_contributors", user, str(n)) for user, n in self.top]
        return rows


def csv_of(report: WeeklyReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("section", "label", "value"))
    writer.writerows(report.rows())
    return out.getvalue()


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
.figures { display: flex; flex-wrap: wrap; gap: .75rem; padding: 0; list-style: none; }
.figures li { border: 1px solid #ddd; border-radius: 6px; padding: .5rem .9rem; }
.figures b { display: block; font-size: 1.3rem; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; }
table { border-collapse: collapse; } td, th { padding: .2rem .8rem; border-bottom: 1px solid #eee; }
"""


def html_of(report: WeeklyReport) -> str:
    end = report.week_start + timedelta(days=6)
    weekdays = [day.strftime("%a %d") for day in report.days]
    figures = [
        ("members", report.members),
        ("joined", report.joined),
        ("left", report.left),
        ("active members", report.active),
        ("posts", report.posts),
        ("comments", report.comments),
        ("reactions", report.reactions),
        ("check-ins", report.checkins),
        ("at churn risk", report.at_risk),
    ]
    charts = [
        bar_chart("Daily active members", weekdays, report.daily_active),
        bar_chart("Posts, comments and reactions", weekdays, report.daily_contributions),
        line_chart(
            "Weekly active members, last 8 weeks",
            [start.strftime("%d %b") for start, _ in report.weekly_active],
            [n for _, n in report.weekly_active],
        ),
    ]
    if report.satisfaction:
        charts.append(
            line_chart(
                "Satisfaction (0-100)",
                [start.strftime("%d %b") for start, _ in report.satisfaction],
                [s for _, s in report.satisfaction],
            )
        )
    top = (
        "".join(f"<tr><td>{escape(user)}</td><td>{n}</td></tr>" for user, n in report.top)
        or '<tr><td colspan="2">nobody contributed this week</td></tr>'
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>Weekly report {report.week_start.isoformat()}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>Weekly report: {report.week_start.isoformat()} to {end.isoformat()}</h1>"
        f"<p>Community {escape(report.community_id)}; days are UTC.</p>"
        '<ul class="figures">'
        + "".join(f"<li><b>{value}</b>{escape(label)}</li>" for label, value in figures)
        + "</ul><h2>Charts</h2>"
        + '<div class="charts">'
        + "".join(charts)
        + "</div><h2>Top contributors</h2>"
        + f"<table><tr><th>member</th><th>contributions</th></tr>{top}</table>"
        + "</body></html>\n"
    )
