// Each figure of a page opens its full-size file: a notebook's output images and the book's own figures become
// links to the image they show (the animation player's frames excepted, and images already inside a link).
// The page's <link rel="alternate" hreflang> (book/_ext/site_pages.py) becomes a button to the same page in the
// other edition, English or Chinese, keeping the section the reader is at.
document.addEventListener("DOMContentLoaded", () => {
  const fullSize = document.querySelector('meta[name="cg-full-size-title"]');
  document.querySelectorAll(".cell_output img, figure img").forEach(img => {
    if (img.closest("a, .cg-player") || (img.getAttribute("src") || "").startsWith("data:")) return;
    const link = document.createElement("a");
    link.href = img.getAttribute("src");
    link.className = "cg-full-size";
    link.title = fullSize ? fullSize.content : "Open the full-size image";
    img.replaceWith(link);
    link.appendChild(img);
  });
  const other = document.querySelector('link[rel="alternate"][hreflang]');
  const bar = document.querySelector(".article-header-buttons");
  if (other && bar) {
    const button = document.createElement("a");
    button.href = other.getAttribute("href");
    button.className = "btn btn-sm cg-language";
    button.title = other.title;
    button.lang = other.hreflang;
    button.textContent = other.dataset.label;
    button.addEventListener("click", () => { button.href = other.getAttribute("href") + location.hash; });
    bar.prepend(button);
  }
});
