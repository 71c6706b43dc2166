"""Browser tests of the web console: headless Chromium (Debian's chromium + chromium-driver)
driven by selenium. Signs in, plays a recorded SSH session, watches a pending review appear
without a reload, approves it, and saves screenshots of each page.

usage: console_browser.py BASE_URL SCREENSHOT_DIR   (env: HELD_STARTED = a file that appears when
       the test may expect the review; REVIEW_TRIGGER = a file this script creates when the
       reviews page is open, so the held statement starts only then; TOKEN_ALICE (eng),
       TOKEN_AUDREY (auditor, dba-leads), TOKEN_AUDREY_AUDITOR (auditor), TOKEN_ADMIN (adam: admin, eng) = tokens from
       `sluice token`, pasted into the dev sign-in form)
Prints one line per check: "ok NAME" or "FAIL NAME: why"; exits 1 when a check failed.
"""
import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

base, shots = sys.argv[1], sys.argv[2]
os.makedirs(shots, exist_ok=True)
failures = 0


def check(name, condition, why=""):
    global failures
    if condition:
        print(f"ok {name}", flush=True)
    else:
        failures += 1
        print(f"FAIL {name}: {why}", flush=True)


def browser(width=1280, height=900, dark=False):
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={width},{height}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    if width < 500:
        # Headless Chromium windows are at least 500 px wide: emulate the phone's viewport.
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": height, "deviceScaleFactor": 2, "mobile": True})
    if dark:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    return driver


def shot(driver, name):
    time.sleep(0.3)
    driver.save_screenshot(os.path.join(shots, name + ".png"))


def sign_in(driver, token):
    """The dev sign-in: paste a token minted by `sluice token` (the form has no name or group fields)."""
    driver.get(base + "/console/signin")
    check("the dev sign-in form asks for a token, not a name", not driver.find_elements(By.NAME, "user")
          and not driver.find_elements(By.NAME, "groups"))
    driver.find_element(By.NAME, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "[data-signin-dev] button").click()
    WebDriverWait(driver, 10).until(EC.presence_of_element_located((By.CSS_SELECTOR, "[data-sessions]")))


wait = None
driver = browser()
requester = browser()
try:
    sign_in(requester, os.environ["TOKEN_ALICE"])
    wait = WebDriverWait(driver, 20)
    driver.get(base + "/console/signin")
    shot(driver, "signin")
    sign_in(driver, os.environ["TOKEN_AUDREY"])
    check("sign in with the dev sign-in", driver.find_element(By.CSS_SELECTOR, "[data-user]").text == "audrey")
    logs = [entry for entry in driver.get_log("browser") if "Content Security Policy" in entry.get("message", "")]
    check("no Content-Security-Policy violations", not logs, str(logs[:2]))
    shot(driver, "sessions")

    # The recorded SSH session: open it and play it to the end.
    driver.get(base + "/console/sessions?protocol=ssh")
    links = driver.find_elements(By.CSS_SELECTOR, "[data-sessions] tbody a")
    check("the SSH session is listed", bool(links), "no ssh session in the list")
    links[-1].click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "[data-player][data-ready]")))
    driver.find_element(By.CSS_SELECTOR, "[data-speed]").send_keys("16×")
    driver.find_element(By.CSS_SELECTOR, "[data-play]").click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "[data-player][data-finished]")))
    screen = driver.find_element(By.CSS_SELECTOR, "[data-screen]").text
    check("the replay shows the masked output", "[EMAIL]" in screen and "jane.doe@example.com" not in screen, screen[:300])
    red = driver.execute_script(
        "return [...document.querySelectorAll('[data-screen] span')].some(s => s.textContent.includes('DANGER') && s.style.color)")
    check("ANSI colours are rendered", red)
    seek = driver.find_element(By.CSS_SELECTOR, "[data-seek]")
    driver.execute_script("arguments[0].value = 0; arguments[0].dispatchEvent(new Event('input'));", seek)
    check("seeking back to the start clears the screen", "[EMAIL]" not in driver.find_element(By.CSS_SELECTOR, "[data-screen]").text)
    driver.find_element(By.CSS_SELECTOR, "[data-play]").click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "[data-player][data-finished]")))
    shot(driver, "session-ssh")

    # The reviews inbox, open before the statement is held: the review appears without a reload.
    driver.get(base + "/console/reviews")
    open(os.environ["REVIEW_TRIGGER"], "w").close()
    row = WebDriverWait(driver, 30).until(EC.presence_of_element_located((By.CSS_SELECTOR, "[data-review-list] tr[data-new]")))
    check("a new pending review appears without a reload (server-sent events)", "delete from audit_keep" in row.text, row.text)
    shot(driver, "reviews")
    review_url = row.find_element(By.LINK_TEXT, "Open").get_attribute("href")
    requester.get(review_url)
    check("the requester sees the pending review but no approve button",
          requester.find_elements(By.CSS_SELECTOR, "[data-own]") and not requester.find_elements(By.CSS_SELECTOR, "[data-approve]"))
    row.find_element(By.LINK_TEXT, "Open").click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "[data-approve]")))
    shot(driver, "review")
    driver.find_element(By.CSS_SELECTOR, "[data-approve]").click()
    WebDriverWait(driver, 20).until(EC.url_contains("done="))
    status = driver.find_element(By.CSS_SELECTOR, "[data-status]").text
    check("the review is approved from the browser", status == "approved", status)

    driver.get(base + "/console/audit")
    check("the audit page shows a verified chain", "verified" in driver.find_element(By.CSS_SELECTOR, "[data-audit-ok]").text)
    shot(driver, "audit")
    driver.get(base + "/console/connections")
    check("non-admins get no add form", not driver.find_elements(By.CSS_SELECTOR, "[data-add-connection]"))
    shot(driver, "connections")
    driver.get(base + "/console/sessions?protocol=postgres")
    links = driver.find_elements(By.CSS_SELECTOR, "[data-sessions] tbody a")
    if links:
        links[-1].click()   # the oldest: the SELECT with its masked rows
        shot(driver, "session-postgres")
except Exception as error:
    failures += 1
    print(f"FAIL the browser run stopped: {type(error).__name__} at {driver.current_url}", flush=True)
    print(driver.find_element(By.TAG_NAME, "body").text[:1500], flush=True)
finally:
    driver.quit()
    requester.quit()

# An admin adds, changes and removes a connection from the Connections page (CSRF-protected forms).
admin = browser()
try:
    sign_in(admin, os.environ["TOKEN_ADMIN"])
    admin.get(base + "/console/connections")
    card = admin.find_element(By.CSS_SELECTOR, '[data-connection="app-db"]')
    line = card.find_element(By.CSS_SELECTOR, "[data-connect-line]").text
    check("each connection shows the exact psql line for the signed-in user",
          "psql \"host=127.0.0.1" in line and "dbname=app-db user=adam sslmode=require" in line and "$(sluice token)" in line, line)
    check("and the sluice connect command", card.find_element(By.CSS_SELECTOR, "[data-connect-command]").text == "sluice connect app-db")
    form = admin.find_element(By.CSS_SELECTOR, "[data-add-connection] form")
    form.find_element(By.NAME, "name").send_keys("reports-db")
    form.find_element(By.NAME, "target").send_keys("127.0.0.1:5999")
    form.find_element(By.NAME, "database").send_keys("reports")
    form.find_element(By.NAME, "username").send_keys("reporter")
    form.find_element(By.NAME, "password_env").send_keys("REPORTS_PW")
    form.find_element(By.NAME, "groups").send_keys("analysts, eng")
    form.find_element(By.CSS_SELECTOR, "[data-create-connection]").click()
    WebDriverWait(admin, 10).until(EC.url_contains("done=added"))
    WebDriverWait(admin, 10).until(EC.presence_of_element_located((By.CSS_SELECTOR, '[data-connection="reports-db"]')))
    added = admin.find_element(By.CSS_SELECTOR, '[data-connection="reports-db"]')
    check("a connection added in the form is listed at once, marked runtime",
          added.find_element(By.CSS_SELECTOR, "[data-source]").text == "runtime"
          and added.find_element(By.CSS_SELECTOR, "[data-groups]").text == "analysts, eng")
    shot(admin, "connections-admin")
    added.find_element(By.CSS_SELECTOR, "[data-edit-connection] summary").click()
    groups = added.find_element(By.CSS_SELECTOR, "[data-edit-groups]")
    groups.clear()
    groups.send_keys("analysts")
    added.find_element(By.CSS_SELECTOR, "[data-save-connection]").click()
    # The page after the add also says "done": wait for the new page, not for the old one's note.
    WebDriverWait(admin, 10).until(EC.url_contains("done=changed"))
    WebDriverWait(admin, 10).until(EC.presence_of_element_located((By.CSS_SELECTOR, "[data-connection-done]")))
    groups_now = admin.find_element(By.CSS_SELECTOR, '[data-connection="reports-db"] [data-groups]').text
    check("the edit form changes it", groups_now == "analysts", groups_now)
    # A form posted without the page's CSRF token is refused, and changes nothing.
    status = admin.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const body = new URLSearchParams({name: 'forged-db', type: 'postgres', target: '127.0.0.1:1'});
        fetch('/console/connections', {method: 'POST', body}).then(response => done(response.status), () => done(0));""")
    check("a post without the CSRF token is refused (403)", status == 403, str(status))
    admin.get(base + "/console/connections")
    check("and added nothing", not admin.find_elements(By.CSS_SELECTOR, '[data-connection="forged-db"]'))
    bad = admin.find_element(By.CSS_SELECTOR, "[data-add-connection] form")
    bad.find_element(By.NAME, "name").send_keys("broken-db")
    bad.find_element(By.NAME, "target").send_keys("no-port-here")
    bad.find_element(By.CSS_SELECTOR, "[data-create-connection]").click()
    WebDriverWait(admin, 10).until(EC.url_contains("error="))
    WebDriverWait(admin, 10).until(EC.presence_of_element_located((By.CSS_SELECTOR, "[data-connection-error]")))
    check("an invalid definition is refused with the key and why",
          "target" in admin.find_element(By.CSS_SELECTOR, "[data-connection-error]").text)
    admin.find_element(By.CSS_SELECTOR, '[data-connection="reports-db"] [data-edit-connection] summary').click()
    admin.find_element(By.CSS_SELECTOR, '[data-connection="reports-db"] [data-remove-connection]').click()
    WebDriverWait(admin, 10).until(EC.url_contains("done=removed"))
    WebDriverWait(admin, 10).until(EC.presence_of_element_located((By.CSS_SELECTOR, "[data-connection-done]")))
    check("the remove button removes it", not admin.find_elements(By.CSS_SELECTOR, '[data-connection="reports-db"]'))
except Exception as error:
    failures += 1
    print(f"FAIL the admin run stopped: {type(error).__name__} at {admin.current_url}", flush=True)
    print(admin.find_element(By.TAG_NAME, "body").text[:1500], flush=True)
finally:
    admin.quit()

# A phone-width screen and the dark theme.
phone = browser(390, 844, dark=True)
try:
    sign_in(phone, os.environ["TOKEN_AUDREY_AUDITOR"])
    width = phone.execute_script("return document.documentElement.scrollWidth")
    check("the sessions page fits a phone-width screen", width <= 400, f"scrollWidth {width}")
    background = phone.execute_script("return getComputedStyle(document.body).backgroundColor")
    check("the dark theme applies", background not in ("rgb(247, 247, 245)", "rgba(0, 0, 0, 0)"), background)
    shot(phone, "sessions-phone-dark")
finally:
    phone.quit()

sys.exit(1 if failures else 0)
