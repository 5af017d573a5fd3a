// Pieces the account and meeting pages share: labelled fields, alerts and
// a form's busy state.
import { h, showError } from "../dom.js";

// field is a label and its input: field("Username", {id: "x", …}, hint).
export function field(label, attrs, hint) {
  const hintId = hint ? attrs.id + "-hint" : undefined;
  return h("div", { class: "field" },
    h("label", { for: attrs.id }, label),
    h("input", { ...attrs, "aria-describedby": hintId }),
    hint && h("small", { id: hintId, class: "hint" }, hint));
}

// alert is an empty role=alert element that showError fills.
export const alert = (id) => h("p", { id, role: "alert", class: "alert", hidden: true });

// note is a polite status line (success messages).
export const note = (id) => h("p", { id, role: "status", class: "note", hidden: true });

// busy disables controls while task runs and enables them again after,
// whether it succeeds or throws. It returns task's result.
export async function busy(controls, task) {
  const list = controls.filter(Boolean);
  for (const c of list) c.disabled = true;
  try {
    return await task();
  } finally {
    for (const c of list) c.disabled = false;
  }
}

// onSubmit wires a form's submit to run, with its submit button disabled
// and its alert cleared meanwhile; an error thrown by run is shown in the
// alert and focus stays in the form.
export function onSubmit(form, { submit, error, run }) {
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (submit.disabled) return;
    showError(error, "");
    try {
      await busy([submit], run);
    } catch (err) {
      showError(error, err.message);
    }
  });
}

// Refusal is an error of the client-side checks, shown like the server's.
export class Refusal extends Error {
  constructor(message, input) {
    super(message);
    this.input = input;
  }
}

// refuse throws a Refusal when message is not empty, focusing input.
export function refuse(message, input) {
  if (!message) return;
  input?.focus();
  throw new Refusal(message, input);
}
