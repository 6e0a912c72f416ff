// The journey editor: CodeMirror 6 with the journey definition's JSON Schema, so keys and
// values are offered as you type (Ctrl-Space asks), described on hover, and marked where
// the schema refuses them. The API's own rules still judge: the text goes back into the
// form's textarea on every change, whose `input` event makes htmx post it to the check.
// Bundled by `npm run build` (esbuild) into dist/editor.min.js, served from our origin.
import { EditorView, basicSetup } from "codemirror";
import { jsonSchema } from "codemirror-json-schema";

// CodeMirror's styles go in a <style> element: the page's policy admits it by the nonce the
// server gave this script's tag for this answer alone.
const nonce = document.currentScript ? document.currentScript.nonce : "";

async function mount(textarea) {
  const answer = await fetch(textarea.dataset.schema, { credentials: "same-origin" });
  if (!answer.ok) return; // the plain textarea stays, checked as before
  const schema = await answer.json();
  const view = new EditorView({
    doc: textarea.value,
    extensions: [
      EditorView.cspNonce.of(nonce),
      basicSetup,
      jsonSchema(schema),
      EditorView.lineWrapping,
      EditorView.editorAttributes.of({ class: "definition-editor" }),
      EditorView.contentAttributes.of({ "aria-labelledby": textarea.dataset.label }),
      EditorView.updateListener.of((update) => {
        if (!update.docChanged) return;
        textarea.value = update.state.doc.toString();
        textarea.dispatchEvent(new Event("input", { bubbles: true }));
      }),
    ],
  });
  textarea.after(view.dom);
  textarea.hidden = true;
}

document.addEventListener("DOMContentLoaded", () => {
  const textarea = document.getElementById("definition");
  if (textarea && textarea.dataset.schema) mount(textarea);
});
