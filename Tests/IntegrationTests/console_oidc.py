#!/usr/bin/env python3
"""The console's OIDC sign-in against a running oidc-provider-mock: the authorization-code flow
with PKCE, as a browser follows it (redirects by hand, cookies kept).

usage: console_oidc.py ADMIN_URL SUBJECT  -> prints "signed-in USER" or fails with a reason
"""
import http.cookiejar
import sys
import urllib.error
import urllib.parse
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def location(opener, url, data=None):
    try:
        opener.open(url, data=data)
    except urllib.error.HTTPError as error:
        if error.code in (302, 303):
            return error.headers["Location"]
        raise SystemExit(f"{url} answered {error.code}")
    raise SystemExit(f"{url} did not redirect")


def main() -> None:
    admin, subject = sys.argv[1:3]
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPCookieProcessor(jar))
    authorize = location(opener, f"{admin}/console/signin/oidc")
    query = urllib.parse.parse_qs(urllib.parse.urlparse(authorize).query)
    if query.get("code_challenge_method") != ["S256"] or not query.get("code_challenge") or not query.get("state"):
        raise SystemExit(f"no PKCE in the authorization request: {sorted(query)}")
    callback = location(opener, authorize, data=urllib.parse.urlencode({"sub": subject}).encode())
    if not callback.startswith(f"{admin}/console/callback"):
        raise SystemExit(f"the provider sent the browser to {callback[:80]}")
    tampered = callback.replace("state=", "state=x")
    if "error" not in location(opener, tampered):
        raise SystemExit("a callback with a wrong state was accepted")
    landing = location(opener, callback)
    if landing != "/console/sessions":
        raise SystemExit(f"after the callback: {landing}")
    with opener.open(f"{admin}/console/sessions") as response:
        html = response.read().decode()
    marker = "data-user>"
    start = html.find(marker)
    if start < 0:
        raise SystemExit("not signed in")
    print("signed-in", html[start + len(marker):html.find("<", start)])


if __name__ == "__main__":
    main()
