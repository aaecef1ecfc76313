// The login form: the token goes to /login as a bearer header (never in a URL);
// the server answers with the HttpOnly session cookie, then the page reloads.
const form = document.getElementById("login");
const status = document.getElementById("login-status");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = document.getElementById("token").value.trim();
  if (!token) {
    status.textContent = "Enter a token.";
    return;
  }
  status.textContent = "Signing in…";
  try {
    const r = await fetch("/login", {
      headers: { Authorization: `Bearer ${token}` },
      credentials: "same-origin",
      cache: "no-store",
    });
    if (r.ok) {
      status.textContent = "Signed in.";
      window.location.reload();
    } else {
      status.textContent = r.status === 401 ? "That token was not accepted." : `Sign-in failed (HTTP ${r.status}).`;
    }
  } catch (e) {
    status.textContent = `The server could not be reached: ${e}`;
  }
});
