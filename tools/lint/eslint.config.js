// ESLint for castlog: the recommended rules of ESLint and typescript-eslint, plus two that need
// types — no promise left floating (an unawaited rejection is a silent failure), and every switch
// over a union handles every case (a new event type must not fall through unnoticed). And no line
// over Prettier's printWidth: Prettier does not break strings, template literals or comments, so
// those are split by hand (schemas/typegen.ts keeps the generated types, not linted, within it too).
// And errors are logged as objects, so their stacks survive.
import { readFileSync } from 'node:fs';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const { printWidth } = JSON.parse(readFileSync(new URL('../../.prettierrc.json', import.meta.url), 'utf8'));

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      '**/node_modules/**',
      '.castlog/**',
      'infra/stack/kafka/lib/**',
      'schemas/types.generated.ts',
      'apps/web/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      'max-len': ['error', { code: printWidth, ignoreUrls: true, ignoreStrings: false, ignoreTemplateLiterals: false }],
    },
  },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: new URL('../..', import.meta.url).pathname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Tests and a few protocol edges work with JSON of unknown shape on purpose.
      '@typescript-eslint/no-explicit-any': 'off',
      // Control characters are matched on purpose: refused in input, or marking search snippets.
      'no-control-regex': 'off',
      // An error is logged as the object (pino keeps its type and stack), never as its text.
      'no-restricted-syntax': [
        'error',
        {
          selector: [
            'CallExpression[callee.property.name=/^(fatal|error|warn|info|debug)$/]',
            "Property[key.name=/^err(or)?$/] > CallExpression[callee.name='String']",
          ].join(' '),
          message: 'Log the error object ({ err }), not String(err): the stack would be lost.',
        },
      ],
    },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
);
