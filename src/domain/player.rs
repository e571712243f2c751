/// The calling player, from a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Player {
    pub user_id: String,
    pub username: String,
}
