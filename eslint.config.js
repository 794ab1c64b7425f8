import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'data/', 'coverage/', 'node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['*.js', 'bench/*.js'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // Headers set on Hono's context are lost when a handler returns its own Response (see addHeader in
    // src/http/context.ts): cookies and other extra headers go through addHeader / setCookie of src/http.
    files: ['src/**/*.ts'],
    ignores: ['src/http/context.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { paths: [{ name: 'hono/cookie', importNames: ['setCookie', 'deleteCookie'], message: 'Use setCookie from src/http/cookies.ts.' }] },
      ],
      'no-restricted-syntax': [
        'error',
        { selector: "CallExpression[callee.object.name='c'][callee.property.name='header']", message: 'Use addHeader from src/http/context.ts.' },
      ],
    },
  },
  {
    // Tests read JSON bodies as `any` on purpose: the assertions are the types.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    // Kysely's migration guidance: migrations take Kysely<any>, frozen in time.
    files: ['src/store/migrations/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // The hosted pages' own browser script, served as is (no bundler): browser globals only.
    files: ['src/http/pages/*.browser.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      sourceType: 'script',
      globals: { window: 'readonly', document: 'readonly', fetch: 'readonly', JSON: 'readonly', PublicKeyCredential: 'readonly' },
    },
  },
  {
    files: ['**/*.js'],
    ignores: ['src/http/pages/*.browser.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: {
        process: 'readonly',
        console: 'readonly',
        URL: 'readonly',
        URLSearchParams: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        performance: 'readonly',
        fetch: 'readonly',
        AbortController: 'readonly',
      },
    },
  },
);
