-- Personal data at rest: contact e-mails and phones of customers and users' phones are
-- stored encrypted (enc:v1:…); these keyed blind indexes allow exact-match lookup.
ALTER TABLE customers ADD COLUMN contact_email_idx TEXT NOT NULL DEFAULT '';
ALTER TABLE customers ADD COLUMN contact_phone_idx TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN phone_idx TEXT NOT NULL DEFAULT '';
CREATE INDEX customers_contact_email_idx ON customers(contact_email_idx);
CREATE INDEX customers_contact_phone_idx ON customers(contact_phone_idx);
CREATE INDEX users_phone_idx ON users(phone_idx);

-- Small named settings, such as the canary that tells whether the configured data key is
-- the one this database was encrypted with.
CREATE TABLE settings (
    name    TEXT PRIMARY KEY,
    value   TEXT NOT NULL
);
