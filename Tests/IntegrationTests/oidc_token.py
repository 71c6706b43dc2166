#!/usr/bin/env python3
"""Gets an ID token from a running oidc-provider-mock through the real authorization-code flow.

usage: oidc_token.py ISSUER CLIENT_ID SUBJECT  -> prints the id_token
"""
import json
import sys
import urllib.error
import urllib.parse
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def main() -> None:
    issuer, client_id, subject = sys.argv[1:4]
    redirect = "http://127.0.0.1/callback"
    query = urllib.parse.urlencode({
        "client_id": client_id, "redirect_uri": redirect, "response_type": "code",
        "scope": "openid profile", "state": "s1",
    })
    opener = urllib.request.build_opener(NoRedirect)
    form = urllib.parse.urlencode({"sub": subject}).encode()
    try:
        opener.open(f"{issuer}/oauth2/authorize?{query}", data=form)
        raise SystemExit("expected a redirect with a code")
    except urllib.error.HTTPError as error:
        location = error.headers["Location"]
    code = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)["code"][0]
    body = urllib.parse.urlencode({
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
        "client_id": client_id, "client_secret": "test-secret",
    }).encode()
    with urllib.request.urlopen(f"{issuer}/oauth2/token", data=body) as response:
        print(json.load(response)["id_token"])


if __name__ == "__main__":
    main()
