// The cohort editor: CodeMirror 6 with a small StreamLanguage mode for the cohort language,
// completion and lint sources supplied by the page (api/web/static/workbench.js). Bundled
// once by build.mjs into ../static/vendor/editor.js; nothing here talks to the network.
import { EditorState } from "@codemirror/state";
import {
  EditorView, keymap, lineNumbers, highlightActiveLine, drawSelection,
} from "@codemirror/view";
import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import {
  StreamLanguage, syntaxHighlighting, defaultHighlightStyle, bracketMatching,
} from "@codemirror/language";
import { autocompletion, completionKeymap } from "@codemirror/autocomplete";
import { linter, lintGutter, lintKeymap, forceLinting } from "@codemirror/lint";

// A StreamLanguage tokenizer: comments, strings, dates, numbers, codes, @codeset references,
// keywords (given by the page, taken from the grammar), other names.
function cohortMode(keywords) {
  const kw = new Set(keywords);
  return {
    name: "antal-cohort",
    token(stream) {
      if (stream.eatSpace()) return null;
      if (stream.match("#")) { stream.skipToEnd(); return "comment"; }
      if (stream.match(/^"([^"\\]|\\.)*"?/)) return "string";
      if (stream.match(/^[0-9]{4}-[0-9]{2}-[0-9]{2}/)) return "number";
      if (stream.match(/^@[a-z_][a-z0-9_]*/)) return "variableName.special";
      if (stream.match(/^[A-Z][A-Z0-9]*(\.[A-Z0-9]+)?\*?/)) return "atom";
      if (stream.match(/^-?[0-9]+(\.[0-9]+)?\*?/)) return "number";
      if (stream.match(/^[a-z_][a-z0-9_]*/)) {
        return kw.has(stream.current()) ? "keyword" : "variableName";
      }
      if (stream.match(/^(\.\.|!=|<=|>=|=|<|>)/)) return "operator";
      stream.next();
      return null;
    },
    languageData: { commentTokens: { line: "#" } },
  };
}

export function createEditor({ parent, doc, keywords, complete, lint, onChange, label }) {
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        lineNumbers(), history(), drawSelection(), highlightActiveLine(), bracketMatching(),
        StreamLanguage.define(cohortMode(keywords)),
        syntaxHighlighting(defaultHighlightStyle),
        autocompletion({ override: [complete], activateOnTyping: true }),
        linter(lint, { delay: 400 }), lintGutter(),
        keymap.of([...defaultKeymap, ...historyKeymap, ...completionKeymap, ...lintKeymap]),
        EditorView.contentAttributes.of({ "aria-label": label }),
        EditorView.updateListener.of((u) => { if (u.docChanged && onChange) onChange(view); }),
      ],
    }),
  });
  return view;
}

export { EditorView, forceLinting };
