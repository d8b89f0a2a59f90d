// Seed 000 in real headless Chromium: sign in with email and password, create an API key (shown
// once, copied), attach a fallback routing configuration and a rate limit to it, look the model
// up in the catalog, send requests through the proxy endpoint shown on the Dashboard (one falls
// back), try the Playground, then find both in Request Logs with their resolved model and cost.
// Usage: CONSOLE_URL=http://127.0.0.1:8081 CONSOLE_EMAIL=... CONSOLE_PASSWORD=... node walk.mjs [screenshot-dir]
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const base = process.env.CONSOLE_URL;
const email = process.env.CONSOLE_EMAIL;
const password = process.env.CONSOLE_PASSWORD;
const shots = process.argv[2];
const keyName = `checkout-service-prod-${Date.now()}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const step = (s) => console.log(`step: ${s}`);
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(10000);
  const nav = (name) => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true }).click();
  const shot = async (name) => shots && page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });

  step("sign in");
  await page.goto(`${base}/console`);
  assert.match(page.url(), /\/console\/login$/);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await shot("0-sign-in");
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("heading", { name: "Dashboard" }).waitFor();
  await page.getByText(`Signed in as ${email}`).waitFor();
  const proxy = await page.getByRole("textbox", { name: "Proxy endpoint" }).inputValue();
  assert.match(proxy, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
  await shot("1-dashboard");

  step("create an API key from the quick action");
  await page.getByRole("link", { name: "Create API key" }).click();
  await page.getByLabel("Name", { exact: true }).fill(keyName);
  await page.getByRole("button", { name: "Create", exact: true }).click();
  await page.getByText("it is shown only once").waitFor();
  const key = await page.getByRole("textbox", { name: "API key", exact: true }).inputValue();
  assert.match(key, /^sk-sy-/);
  await page.getByRole("button", { name: "Copy API key" }).click();
  await shot("2-key-created");
  await page.goto(`${base}/console/keys`);
  assert.ok(!(await page.content()).includes(key), "the key is shown only once");
  await page.getByRole("cell", { name: new RegExp(keyName) }).waitFor();

  step("configure routing on the key: fallback policy, two backends from the catalog, Active");
  await page.getByRole("link", { name: keyName, exact: true }).click();
  await page.getByRole("heading", { name: "Routing configuration" }).waitFor();
  await page.getByLabel("Fallback policy", { exact: false }).check();
  await page.getByLabel("Backend 1 model").selectOption("gpt-4o");
  await page.getByLabel("Backend 1 priority").fill("0");
  await page.getByRole("button", { name: "+ Add backend" }).click();
  await page.getByLabel("Backend 2 model").selectOption("claude-sonnet-4");
  await page.getByLabel("Backend 2 priority").fill("1");
  assert.ok(await page.getByLabel("Active").isChecked());
  await page.getByRole("button", { name: "Save routing" }).click();
  await page.getByText("configured", { exact: true }).waitFor();
  assert.equal(await page.getByLabel("Backend 2 model").inputValue(), "claude-sonnet-4");

  step("configure a rate limit: the toggle, then the total-tokens limit by typing a value");
  assert.ok(await page.getByLabel("Total tokens per hour", { exact: true }).isDisabled());
  await page.getByRole("checkbox", { name: "Rate limit", exact: true }).check();
  await page.getByRole("checkbox", { name: "Total tokens", exact: true }).check();
  await page.getByLabel("Total tokens per hour", { exact: true }).fill("200000");
  await page.getByRole("button", { name: "Save limits" }).click();
  await page.getByText("200,000 total tok/h").waitFor();
  assert.equal(await page.getByLabel("Total tokens per hour (slider)").inputValue(), "200000");
  await shot("7-key-configure");

  step("model catalog: search as you type, detail");
  await nav("Model Catalog");
  await page.getByLabel("Search").pressSequentially("gpt");
  await page.getByText("1 models").waitFor();
  assert.ok(await page.getByRole("row", { name: /claude-sonnet-4/ }).isHidden());
  await page.getByRole("link", { name: "gpt-4o", exact: true }).click();
  await page.getByText("$2.50 per 1M tokens").waitFor();
  await page.getByText("$10.00 per 1M tokens").waitFor();
  await shot("3-model-detail");

  step("send a request through the gateway with the new key (the curl step)");
  const r = await fetch(`${proxy}/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "Explain the concept of AI routing in one sentence." }] }),
  });
  assert.equal(r.status, 200);
  const rid = r.headers.get("x-switchyard-request-id");
  assert.ok(rid);

  step("a request whose primary backend fails (the test scripts one 500): the key's chain falls back");
  const fb = await fetch(`${proxy}/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "Hello" }] }),
  });
  assert.equal(fb.status, 200);
  assert.equal(fb.headers.get("x-switchyard-fallbacks"), "1");
  const fbid = fb.headers.get("x-switchyard-request-id");

  step("playground");
  await nav("Playground");
  await page.getByLabel("API key").fill(key);
  await page.getByLabel("Model").selectOption("claude-sonnet-4");
  await page.getByRole("button", { name: "Send" }).click();
  await page.getByRole("heading", { name: "Response" }).waitFor();
  assert.equal((await page.getByTestId("pg-status").textContent()).trim(), "200");
  await shot("4-playground");

  step("request logs: filter by key, expand the row");
  await nav("Request Logs");
  await page.getByLabel("API key (name or id)").fill(keyName);
  await page.getByLabel("Time range").selectOption("1h");
  await page.getByRole("button", { name: "Filter" }).click();
  const row = page.locator(`details[data-request-id="${rid}"]`);
  await row.locator("summary").focus();
  await page.keyboard.press("Enter"); // expandable with the keyboard
  await row.locator('[data-field="resolved-model"]').waitFor({ state: "visible" });
  assert.equal(await row.locator('[data-field="resolved-model"]').textContent(), "gpt-4o");
  assert.equal(await row.locator('[data-field="provider"]').textContent(), "oa");
  assert.match(await row.locator('[data-field="cost"]').textContent(), /^\$0\.0000\d+$/);
  assert.match(await row.locator('[data-field="tokens"]').textContent(), /^[1-9]\d* \/ [1-9]\d*$/);
  // The full request and response content, as the client sent and received it.
  assert.match(await row.locator('[data-field="request-body"]').textContent(), /Explain the concept of AI routing in one sentence\./);
  assert.match(await row.locator('[data-field="response-body"]').textContent(), /"object": "chat\.completion"/);
  const fbrow = page.locator(`details[data-request-id="${fbid}"]`);
  await fbrow.locator("summary").click();
  await fbrow.locator('[data-field="resolved-model"]').waitFor({ state: "visible" });
  assert.equal(await fbrow.locator('[data-field="resolved-model"]').textContent(), "claude-sonnet-4-20250514");
  assert.equal(await fbrow.locator('[data-field="provider"]').textContent(), "an");
  assert.match(await fbrow.textContent(), /oa \/ gpt-4o → 500/);
  await shot("5-request-logs");

  step("usage and sign out");
  await nav("Usage");
  await page.getByRole("table", { name: "By model" }).getByRole("cell", { name: "gpt-4o" }).waitFor();
  await shot("6-usage");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in to Switchyard Console" }).waitFor();
  await page.goto(`${base}/console/logs`);
  assert.match(page.url(), /\/console\/login$/);
  console.log("walk: ok");
} finally {
  await browser.close();
}
