// node server.js — the example app, configured from the environment (see README.md).
import { createExampleApp } from './app.js';

const port = Number(process.env.PORT ?? 4000);
const appUrl = process.env.APP_URL ?? `http://localhost:${port}`;
const required = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`Set ${name} (see README.md)`);
    process.exit(2);
  }
  return value;
};

const { app } = await createExampleApp({
  issuer: process.env.SIGNET_ISSUER ?? 'http://localhost:3000',
  clientId: required('CLIENT_ID'),
  clientSecret: required('CLIENT_SECRET'),
  appUrl,
});
app.listen(port, () => console.log(`Example app on ${appUrl}`));
