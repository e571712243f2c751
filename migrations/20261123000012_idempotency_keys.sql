-- Idempotency-Key on create_game and quick_match: the first answer, replayed for a day.

create table idempotency_keys (
    player_id       text        not null,
    idempotency_key text        not null,
    operation       text        not null,
    product_id      text        not null,
    request         text        not null,
    claim_id        uuid        not null,
    response        jsonb,
    created_at      timestamptz not null default now(),
    completed_at    timestamptz,
    primary key (player_id, idempotency_key)
);

comment on table idempotency_keys is 'Idempotency-Key of a player''s create_game or quick_match: the first answer, replayed to retries for a day.';
comment on column idempotency_keys.player_id is 'The player (user id from the token); keys are per player.';
comment on column idempotency_keys.idempotency_key is 'The Idempotency-Key header as sent.';
comment on column idempotency_keys.operation is 'create_game or quick_match; a key reused for another operation is refused.';
comment on column idempotency_keys.product_id is 'The product of the request; a key reused for another product is refused.';
comment on column idempotency_keys.request is 'What else tells requests apart (e.g. private=true); a key reused for another request is refused.';
comment on column idempotency_keys.claim_id is 'The request running (or that ran) under this key; only it may record or drop the answer.';
comment on column idempotency_keys.response is 'The first answer (JSON body of a 200); null while the first request runs.';
comment on column idempotency_keys.created_at is 'When the first request claimed the key; the answer is replayed for a day from then.';
comment on column idempotency_keys.completed_at is 'When the answer was recorded.';

create index idempotency_keys_created_at_idx on idempotency_keys (created_at);
