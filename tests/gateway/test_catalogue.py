"""`GET /`: the public catalogue of the gateway, and a tenant's own page for people."""

from __future__ import annotations

import html
import re

import pytest

from claw402.cli.main import app
from claw402.pages.render import prefers_html

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_the_catalogue_lists_listed_tenants_with_their_terms(served):
    served.deploy(
        slug="cities",
        price="0.0025",
        name="World cities",
        description="Fifty large cities",
        key="id",
    )
    served.deploy(slug="free", price="0")
    served.deploy(slug="hidden", price="0.01", listed=False)
    r = served.client.get("/")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    tenants = {t["slug"]: t for t in r.json()["tenants"]}
    assert set(tenants) == {"cities", "free"}
    cities = tenants["cities"]
    assert cities["name"] == "World cities" and cities["description"] == "Fifty large cities"
    assert cities["price"] == "0.0025" and cities["free"] is False and cities["rows"] == 50
    assert cities["columns"][:3] == ["id", "city", "country"]
    assert cities["url"] == f"{served.client.base_url}/t/cities".replace("//t", "/t")
    assert cities["updated"].startswith("20")
    assert tenants["free"]["free"] is True
    assert served.client.get("/t/hidden/v1/schema").status_code == 200  # unlisted, not gone


def test_the_catalogue_page_and_its_revalidation(served):
    served.deploy(slug="cities", price="0.0025", name="World <cities>")
    page = served.client.get("/", headers={"accept": BROWSER})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "World &lt;cities&gt;" in page.text and "<cities>" not in page.text  # escaped
    assert "$0.0025" in page.text and 'href="http' in page.text
    assert page.headers["vary"] == "Accept"
    tag = page.headers["etag"]
    assert served.client.get("/", headers={"accept": BROWSER, "if-none-match": tag}
                             ).status_code == 304  # fmt: skip
    assert served.client.get("/?format=json", headers={"accept": BROWSER}).json()["ok"]
    served.deploy(slug="more", price="0")  # a deploy changes the catalogue, and its tag
    fresh = served.client.get("/", headers={"accept": BROWSER, "if-none-match": tag})
    assert fresh.status_code == 200 and "more" in fresh.text and fresh.headers["etag"] != tag


def test_a_tenant_root_is_its_page_for_a_browser_and_its_index_for_a_client(served):
    served.deploy(
        slug="cities",
        price="0.0025",
        key="id",
        hosts=["cities.test"],
        description="Fifty large cities",
    )
    index = served.client.get("/t/cities/")
    assert index.json()["links"]["records"].endswith("/t/cities/v1/records")
    for path, headers in (("/t/cities/", {}), ("/", {"host": "cities.test"})):
        page = served.client.get(path, headers={"accept": BROWSER, **headers})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        text = html.unescape(page.text)
        assert "Fifty large cities" in text and "$0.0025" in text
        cells = re.findall(r"<td>([^<]*)</td>", page.text)
        assert "Tokyo" in cells and "Delhi" in cells and "São Paulo" in text
        assert len(re.findall(r"<tr><td>", page.text)) == 5  # five sample rows
        for snippet in ("curl -i '", "402claw call '", "x402HttpxClient", "wrapFetchWithPayment"):
            assert snippet in text
        assert "/v1/records?_limit=5" in text
        assert page.headers["etag"] and page.headers["vary"] == "Accept"
    by_host = served.client.get("/", headers={"accept": BROWSER, "host": "cities.test"})
    assert "http://cities.test" in html.unescape(by_host.text)


def test_a_free_tenant_page_needs_no_payment_snippets(served):
    served.deploy(slug="free", price="0")
    page = served.client.get("/t/free/", headers={"accept": BROWSER})
    assert "curl '" in html.unescape(page.text) and "402claw call" not in page.text


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        (BROWSER, True),
        ("text/html", True),
        (None, False),
        ("*/*", False),
        ("application/json", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0", False),
        ("text/html;q=x", False),
    ],
)
def test_prefers_html(accept, wanted):
    assert prefers_html(accept) is wanted


def test_deploy_unlisted_and_listed_again(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from claw402.samples import CITIES

    monkeypatch.delenv("CLAW402_DATABASE_URL", raising=False)
    run = CliRunner().invoke
    home = ["--home", str(tmp_path), "--json"]
    first = run(
        app,
        [
            "deploy",
            str(CITIES),
            "--tenant",
            "c",
            "--price",
            "0",
            "--unlisted",
            "--description",
            "Cities",
            *home,
        ],
    )
    assert first.exit_code == 0, first.output
    again = run(app, ["deploy", str(CITIES), "--tenant", "c", *home])  # keeps --unlisted
    assert again.exit_code == 0, again.output
    shown = run(app, ["show", "c", *home])
    assert shown.exit_code == 0, shown.output
    assert '"listed": false' in shown.output and '"description": "Cities"' in shown.output
    run(app, ["deploy", str(CITIES), "--tenant", "c", "--listed", *home])
    assert '"listed": true' in run(app, ["show", "c", *home]).output
