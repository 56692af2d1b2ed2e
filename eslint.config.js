// Lint rules for the whole tree, run by `npm run lint` together with the dependency rule
// (.dependency-cruiser.cjs) and the format check (Prettier, .prettierrc.json).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.stack/', '.scratch/', '.tap/', 'bench/tmp/', 'bench/peer/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // An async function that awaits nothing still turns a throw into a rejection, which the
      // Promise-returning interfaces here (close, onRevoked, codecs) rely on.
      '@typescript-eslint/require-await': 'off',
      // Errors from callbacks and catch clauses are `unknown`; passing them on unchanged keeps their cause.
      '@typescript-eslint/only-throw-error': ['error', { allowThrowingUnknown: true, allowThrowingAny: true }],
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true, allowThrowingAny: true }],
      // Unused names are mistakes; a leading underscore marks one kept on purpose (a callback's position).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    // Tests read JSON bodies and events as untyped data and assert their shape; tap's `t.test`
    // returns a promise the runner itself awaits, and its callbacks may be async without awaiting.
    // Fault injection throws and rejects with whatever a test hands it, and tests match terminal
    // escapes and NUL markers in their regular expressions.
    files: ['**/*.test.ts', 'test/**/*.ts', 'topology/lib/testing/**/*.ts'],
    rules: {
      '@typescript-eslint/only-throw-error': 'off',
      '@typescript-eslint/prefer-promise-reject-errors': 'off',
      '@typescript-eslint/no-base-to-string': 'off',
      'no-control-regex': 'off',
      '@typescript-eslint/no-misused-promises': 'off',
      '@typescript-eslint/no-floating-promises': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.cjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: { module: 'writable', require: 'readonly', process: 'readonly', console: 'readonly' } },
  },
);
