// Ferum's only script. Everything works without it; it only helps:
// - asks before destructive or final actions (buttons with data-confirm);
// - shows the act's amounts and total while typing (the server computes the real ones).
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  const question = button && button.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// Exact decimal arithmetic on strings: kopecks and thousandths as BigInt, never floats.
function scaled(text, places) {
  const s = String(text).trim().replace(",", ".");
  if (!/^\d+(\.\d+)?$/.test(s)) return null;
  const [whole, frac = ""] = s.split(".");
  if (frac.length > places) return null;
  return BigInt(whole + frac.padEnd(places, "0"));
}

function money(kopecks, lang) {
  const roubles = (kopecks / 100n).toString();
  const cents = (kopecks % 100n).toString().padStart(2, "0");
  const group = lang === "ru" ? "\u202f" : ",";
  const point = lang === "ru" ? "," : ".";
  return roubles.replace(/\B(?=(\d{3})+(?!\d))/g, group) + point + cents + "\u00a0₽";
}

function recompute(form) {
  const lang = document.documentElement.lang;
  let total = 0n;
  let complete = true;
  for (const row of form.querySelectorAll("tbody tr")) {
    const q = scaled(row.querySelector("[data-quantity]").value, 3);
    const p = scaled(row.querySelector("[data-price]").value, 2);
    const out = row.querySelector("[data-amount]");
    if (q === null || p === null) {
      out.textContent = "—";
      complete = false;
      continue;
    }
    // quantity (thousandths) × price (kopecks) / 1000, rounded half up, as the server does.
    const amount = (q * p + 500n) / 1000n;
    out.textContent = money(amount, lang);
    total += amount;
  }
  form.querySelector("[data-total]").textContent = complete ? money(total, lang) : "—";
}

for (const form of document.querySelectorAll("form[data-live-total]")) {
  form.addEventListener("input", () => recompute(form));
}

// The new-request form: choosing the customer narrows the sites at once (without the script
// a button reloads the form with them), and choosing a site shows the project it fills in.
for (const select of document.querySelectorAll("select[data-narrows]")) {
  const target = document.getElementById(select.dataset.narrows);
  const mirror = document.getElementById(select.dataset.mirror);
  const button = select.form.querySelector("[data-without-script]");
  if (button) button.hidden = true;
  const narrow = (event) => {
    const customer = select.value;
    // The list came narrowed from the server (no script, or a form sent back): another
    // customer's sites are not in it, so fetch them.
    const known = [...target.options].some((o) => o.value && (customer === "" || o.dataset.customer === customer));
    if (event && !known) {
      select.form.submit();
      return;
    }
    for (const option of target.options) {
      if (!option.value) continue;
      const other = customer !== "" && option.dataset.customer !== customer;
      option.hidden = other;
      option.disabled = other;
      if (other && option.selected) target.value = "";
    }
    if (mirror) mirror.value = customer;
    target.dispatchEvent(new Event("change"));
  };
  select.addEventListener("change", narrow);
  narrow();
}

for (const select of document.querySelectorAll("select[data-fills]")) {
  const out = document.getElementById(select.dataset.fills);
  const show = () => {
    const option = select.selectedOptions[0];
    out.textContent = (option && option.dataset.project) || out.dataset.empty;
  };
  select.addEventListener("change", show);
}
